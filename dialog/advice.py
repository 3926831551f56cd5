"""Composing the patient-facing texts of the engine: questions with their buttons and the advice.

Everything comes from protocol and locale texts; the model (when there is one) may only rephrase
what is built here, and the safety guard falls back to exactly this text.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialog.events import Button
from dialog.protocol import Protocol, Question, QuestionType
from dialog.ruleset import RuleSet
from safety import Lang, Level, Responder


def question_buttons(question: Question, rules: RuleSet, lang: Lang) -> tuple[Button, ...]:
    if question.type is QuestionType.YES_NO:
        return tuple(
            Button(label=rules.text(f"answer.{value}").get(lang), data=f"a:{question.id}:{value}")
            for value in ("yes", "no", "unsure")
        )
    if question.type is QuestionType.CHOICE:
        return (
            *(
                Button(label=choice.text.get(lang), data=f"a:{question.id}:{choice.id}")
                for choice in question.choices
            ),
            Button(label=rules.text("answer.unsure").get(lang), data=f"a:{question.id}:unsure"),
        )
    if question.type is QuestionType.NUMBER:
        return (Button(label=rules.text("answer.unknown_number").get(lang), data=f"a:{question.id}:unsure"),)
    return ()


def advice_text(
    *,
    rules: RuleSet,
    responder: Responder,
    protocol: Protocol | None,
    level: Level,
    reason: str,
    others: list[str],
    lang: Lang,
    unsure: Sequence[tuple[Question, Level]] = (),
) -> str:
    number = responder.region.emergency_number
    parts = [
        rules.text("advice.heading")
        .get(lang)
        .format(level=rules.text(f"level.{level.value}").get(lang).format(number=number))
    ]
    if protocol is not None and level in protocol.advice:
        parts.append(protocol.advice[level].get(lang).strip())
    if reason:
        parts.append(rules.text("advice.because").get(lang).format(reason=reason))
    if protocol is not None and level in protocol.safety_net:
        parts.append(
            rules.text("advice.watch").get(lang) + "\n" + protocol.safety_net[level].get(lang).strip()
        )
    if unsure:
        lines = [
            rules.text("advice.unsure_item")
            .get(lang)
            .format(
                question=question.ask.get(lang).strip(),
                level=rules.text(f"level.{sign_level.value}").get(lang).format(number=number),
            )
            for question, sign_level in unsure
        ]
        parts.append(rules.text("advice.unsure").get(lang) + "\n" + "\n".join(lines))
    if others:
        separator = "、" if lang == "zh" else ", "
        parts.append(rules.text("advice.also").get(lang).format(others=separator.join(others)))
    parts.append(responder.disclaimer(lang))
    return "\n\n".join(parts)
