"""The output guard rejects what a model must never tell a patient."""

from __future__ import annotations

import pytest

from safety import REGIONS, Level
from safety.guard import OutputGuard, Rejection


@pytest.fixture
def guard() -> OutputGuard:
    return OutputGuard(REGIONS["cn"].numbers)


@pytest.mark.parametrize(
    ("text", "lang", "level", "reason"),
    [
        ("Take 500 mg of paracetamol every 6 hours.", "en", Level.SELF_CARE, Rejection.DOSE),
        ("Give him 2 tablets twice a day.", "en", Level.SELF_CARE, Rejection.DOSE),
        ("可以吃布洛芬，每次一片，每天三次。", "zh", Level.SELF_CARE, Rejection.DOSE),
        ("I will prescribe amoxicillin for you.", "en", Level.CONSULTATION, Rejection.PRESCRIPTION),
        ("我给你开点消炎药吧。", "zh", Level.CONSULTATION, Rejection.PRESCRIPTION),
        ("You have pneumonia.", "en", Level.CONSULTATION_24, Rejection.DIAGNOSIS),
        ("你得了肺炎。", "zh", Level.CONSULTATION_24, Rejection.DIAGNOSIS),
        ("As a doctor, I think you will be fine.", "en", Level.SELF_CARE, Rejection.IMPERSONATION),
        ("我是医生，你放心。", "zh", Level.SELF_CARE, Rejection.IMPERSONATION),
        (
            "There is no need to see a doctor for this.",
            "en",
            Level.CONSULTATION_24,
            Rejection.CONTRADICTS_LEVEL,
        ),
        ("不用去医院，在家休息就行。", "zh", Level.CONSULTATION, Rejection.CONTRADICTS_LEVEL),
        ("Please rest and drink fluids.", "zh", Level.SELF_CARE, Rejection.WRONG_LANGUAGE),
        ("More at https://example.com/fever", "en", Level.SELF_CARE, Rejection.LINK),
        ("Call 400-123-4567 for our clinic.", "en", Level.SELF_CARE, Rejection.PHONE_NUMBER),
        ("word " * 300, "en", Level.SELF_CARE, Rejection.TOO_LONG),
        ("   ", "en", Level.SELF_CARE, Rejection.EMPTY),
    ],
)
def test_rejects(guard: OutputGuard, text: str, lang: str, level: Level, reason: Rejection) -> None:
    verdict = guard.check(text, lang=lang, level=level)  # type: ignore[arg-type]
    assert not verdict.accepted
    assert verdict.reason is reason


@pytest.mark.parametrize(
    ("text", "lang", "level"),
    [
        (
            "Rest, drink plenty of fluids, and see a doctor if the fever lasts more than 5 days.",
            "en",
            Level.SELF_CARE,
        ),
        ("请在24小时内看医生。如果出现呼吸困难，请拨打120。", "zh", Level.CONSULTATION_24),
        ("How high has the temperature been?", "en", None),
        ("If you feel unsafe, call 12356 or 010-82951332.", "en", Level.EMERGENCY),
    ],
)
def test_accepts_plain_safe_phrasing(guard: OutputGuard, text: str, lang: str, level: Level | None) -> None:
    assert guard.check(text, lang=lang, level=level).accepted  # type: ignore[arg-type]


def test_decisions_are_counted_without_text(guard: OutputGuard, caplog: pytest.LogCaptureFixture) -> None:
    guard.check("Take 500 mg now", lang="en", level=Level.SELF_CARE)
    guard.check("Rest at home and drink fluids.", lang="en", level=Level.SELF_CARE)
    assert guard.counts == {"dose": 1, "accepted": 1}
    assert "500" not in caplog.text
