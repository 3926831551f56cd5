"""What a simulated patient sends in the benchmarks, turn by turn, on the engine-test protocols."""

from __future__ import annotations

from collections.abc import Callable

from tests.telegram_fixtures.fake_api import Sent, offers, says

Step = tuple[str, str, Callable[[Sent], bool]]  # (say | tap, text or data, end of the turn)

CONSULTATION: list[Step] = [
    ("say", "I have had a fever since yesterday", offers("consent:yes")),
    ("tap", "consent:yes", offers("who:self")),
    ("tap", "who:self", says("How old")),
    ("say", "34", offers("sex:F")),
    ("tap", "sex:F", offers("a:stiff_neck:no")),
    ("tap", "a:stiff_neck:no", offers("a:drinking:normal")),
    ("say", "as usual", offers("open:none")),
    ("tap", "open:none", says("Rest and drink fluids.")),
]
ECHO: list[Step] = [("say", f"hello {n}", says(f"hello {n}")) for n in range(len(CONSULTATION))]
