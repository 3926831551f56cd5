"""Triage over one protocol: which rules hold, the level they give, and what to ask next.

Pure functions of a protocol and the answers so far. A question is worth asking only if some
rule more urgent than the current level is still undecided and reads it; among those, the one
that can raise the level the most comes first, then the protocol's own order.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialog.conditions import Answers
from dialog.protocol import Protocol, Question, QuestionType, Rule
from safety import Level


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one protocol stands: its level, the rule that set it, and the next question."""

    protocol: Protocol
    level: Level
    rule: Rule
    read: dict[str, str | float]
    next_question: Question | None

    @property
    def rule_id(self) -> str:
        return self.protocol.full_rule_id(self.rule)

    @property
    def settled(self) -> bool:
        return self.next_question is None


def decide(protocol: Protocol, answers: Answers) -> Decision:
    """Evaluate every rule in three-valued logic and choose the next useful question.

    A question is asked only while unanswered; the service records `unsure` when a reply cannot
    be read twice, so nothing is asked a third time.
    """
    fired = [rule for rule in protocol.rules if rule.condition.evaluate(answers) is True]
    deciding = max(fired, key=lambda rule: rule.level.rank)  # the baseline always fires
    level = deciding.level
    if level is Level.EMERGENCY_AMBULANCE:
        return Decision(protocol, level, deciding, _read(deciding, answers), None)

    best: tuple[int, int, Question] | None = None
    for rule in protocol.rules:
        if rule.level <= level or rule.condition.evaluate(answers) is not None:
            continue
        for question in protocol.questions:
            if question.id in answers or question.id not in rule.condition.variables():
                continue
            askable = _askable(protocol, question, answers)
            if askable is None:
                continue
            order = protocol.questions.index(askable)
            candidate = (-rule.level.rank, order, askable)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
    return Decision(protocol, level, deciding, _read(deciding, answers), best[2] if best else None)


def unconfirmed_signs(protocol: Protocol, answers: Answers, level: Level) -> list[tuple[Question, Level]]:
    """Yes/no questions answered `unsure` that would have given a more urgent level had the answer
    been yes, with that level: the advice names them so the patient knows what to act on."""
    found: list[tuple[Question, Level]] = []
    for question in protocol.questions:
        if question.type is not QuestionType.YES_NO or answers.get(question.id) != "unsure":
            continue
        trial = {**answers, question.id: "yes"}
        fired = [rule.level for rule in protocol.rules if rule.condition.evaluate(trial) is True]
        if fired and max(fired) > level:
            found.append((question, max(fired)))
    return found


def _askable(protocol: Protocol, question: Question, answers: Answers, depth: int = 0) -> Question | None:
    """The question itself when its `ask_if` holds; when `ask_if` is still unknown, the question
    that would settle it ("are you pregnant?" before "is the baby moving less?"); else None."""
    gate = question.gate.evaluate(answers)
    if gate is True:
        return question
    if gate is False or depth > 3:
        return None
    questions = protocol.question_map
    for name in sorted(
        question.gate.variables(),
        key=lambda n: protocol.questions.index(questions[n]) if n in questions else -1,
    ):
        if name in answers or name not in questions:
            continue
        found = _askable(protocol, questions[name], answers, depth + 1)
        if found is not None:
            return found
    return None


def _read(rule: Rule, answers: Answers) -> dict[str, str | float]:
    return {name: answers[name] for name in sorted(rule.condition.variables()) if name in answers}
