"""The interface through which the engine lets a language model phrase what it says.

The engine decides what to say (a protocol's question or advice, in the patient's language);
a Phraser may only reword it. `bot/` adapts the `model` package to this interface, and the
service passes every result through the safety guard, falling back to the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from safety import Lang

PhraseKind = Literal["question", "advice"]


@dataclass(frozen=True, slots=True)
class ReadingRequest:
    """A question the lexicon could not answer from the patient's words."""

    question: str
    kind: Literal["yes_no", "choice", "number"]
    lang: Lang
    patient_text: str
    choices: tuple[tuple[str, str], ...] = ()  # (choice id, label)
    unit: str | None = None


class Phraser(Protocol):
    def speaks(self, lang: Lang) -> bool:
        """Whether phrasing in `lang` is worth asking for (else the template goes out at once)."""

    async def phrase(self, kind: PhraseKind, lang: Lang, template: str, *, key: str) -> str | None:
        """The template reworded, or None (declined, timed out, failed). Never raises."""

    async def read_answer(self, request: ReadingRequest, *, key: str) -> str | float | None:
        """The answer the text gives (`yes`/`no`/`unsure`, a choice id or a number), or None.
        The service validates it; it never overrides an explicit answer or a red flag."""

    def cancel(self, key: str) -> None:
        """Drop pending work for `key` (the patient sent something new)."""
