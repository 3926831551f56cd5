"""The schema of a triage protocol file (docs/protocol-format.md) and its own consistency checks."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from dialog.conditions import (
    SYMBOLS,
    Always,
    Condition,
    ConditionError,
    comparisons,
    parse_condition,
)
from safety import Level, Localized, Source
from safety.redflags import Population

_ID = r"^[a-z][a-z0-9_]*$"
INTAKE_FACTS: dict[str, tuple[str, ...] | Literal["number"]] = {
    "age": "number",
    "sex": ("M", "F", "unsure"),
    "who": ("self", "child", "other"),
}


class QuestionType(StrEnum):
    YES_NO = "yes_no"
    CHOICE = "choice"
    NUMBER = "number"
    TEXT = "text"


class Quantity(StrEnum):
    TEMPERATURE = "temperature"
    DURATION = "duration"
    COUNT = "count"
    PLAIN = "plain"


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    text: Localized
    concepts: tuple[str, ...] = ()


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    type: QuestionType
    ask: Localized
    concept: str | None = None
    quantity: Quantity | None = None
    unit: Literal["hours", "days"] | None = None
    choices: tuple[Choice, ...] = ()
    ask_if: str | None = None
    _gate: Condition = PrivateAttr(default_factory=Always)

    @model_validator(mode="after")
    def _shape(self) -> Question:
        if self.type is QuestionType.CHOICE and len(self.choices) < 2:
            raise ValueError(f"question {self.id}: a choice question needs at least two choices")
        if self.type is not QuestionType.CHOICE and self.choices:
            raise ValueError(f"question {self.id}: only choice questions have choices")
        if self.type is QuestionType.NUMBER and self.quantity is None:
            raise ValueError(f"question {self.id}: a number question needs a quantity")
        if self.quantity is Quantity.DURATION and self.unit is None:
            raise ValueError(f"question {self.id}: a duration needs a unit (hours or days)")
        if self.concept is not None and self.type is not QuestionType.YES_NO:
            raise ValueError(f"question {self.id}: only yes_no questions link a concept")
        if self.ask_if is not None:
            try:
                self._gate = parse_condition(self.ask_if)
            except ConditionError as exc:
                raise ValueError(f"question {self.id}: ask_if: {exc}") from None
        return self

    @property
    def gate(self) -> Condition:
        return self._gate

    def allowed_values(self) -> tuple[str, ...] | Literal["number", "text"]:
        if self.type is QuestionType.YES_NO:
            return ("yes", "no", "unsure")
        if self.type is QuestionType.CHOICE:
            return (*(choice.id for choice in self.choices), "unsure")
        return "number" if self.type is QuestionType.NUMBER else "text"

    def same_definition(self, other: Question) -> bool:
        return (self.type, self.concept, self.quantity, self.unit, tuple(c.id for c in self.choices)) == (
            other.type,
            other.concept,
            other.quantity,
            other.unit,
            tuple(c.id for c in other.choices),
        )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_ID)
    level: Level
    if_: str = Field(alias="if")
    reason: Localized
    source: str
    _condition: Condition = PrivateAttr(default_factory=Always)

    @field_validator("if_", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # YAML reads a bare `if: always` as a string, but `if: true` as a boolean.
        return "always" if value is True else value

    @model_validator(mode="after")
    def _parse(self) -> Rule:
        try:
            self._condition = parse_condition(self.if_)
        except ConditionError as exc:
            raise ValueError(f"rule {self.id}: {exc}") from None
        return self

    @property
    def condition(self) -> Condition:
        return self._condition

    @property
    def is_baseline(self) -> bool:
        return isinstance(self._condition, Always)


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concepts: tuple[str, ...] = Field(min_length=1)
    all_of: tuple[str, ...] = ()
    rank: int = Field(ge=0, le=100)


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    title: Localized
    sources: tuple[Source, ...] = Field(min_length=1)
    population: Population = Population()
    match: Match
    fallback: bool = False
    questions: tuple[Question, ...] = ()
    rules: tuple[Rule, ...] = Field(min_length=1)
    advice: dict[Level, Localized]
    safety_net: dict[Level, Localized] = Field(default_factory=dict)

    def full_rule_id(self, rule: Rule) -> str:
        return f"{self.id}.{rule.id}"

    @property
    def question_map(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    def concepts(self) -> set[str]:
        found = set(self.match.concepts) | set(self.match.all_of)
        for question in self.questions:
            if question.concept:
                found.add(question.concept)
            for choice in question.choices:
                found.update(choice.concepts)
        return found


Loc = tuple[str | int, ...]


def protocol_problems(protocol: Protocol) -> list[tuple[Loc, str]]:
    """Consistency problems of one protocol, each with where it is in the file."""
    problems: list[tuple[Loc, str]] = []
    seen: set[str] = set()
    for index, question in enumerate(protocol.questions):
        if question.id in seen:
            problems.append((("questions", index, "id"), f"question id {question.id} is used twice"))
        seen.add(question.id)
    seen = set()
    source_ids = {s.id for s in protocol.sources}
    questions = protocol.question_map
    for index, rule in enumerate(protocol.rules):
        if rule.id in seen:
            problems.append((("rules", index, "id"), f"rule id {rule.id} is used twice"))
        seen.add(rule.id)
        if rule.source not in source_ids:
            problems.append(
                (("rules", index, "source"), f"rule {rule.id}: source {rule.source!r} is not in `sources`")
            )
        problems += [
            (("rules", index, "if"), f"rule {rule.id}: {p}")
            for p in _check_condition(rule.condition, questions)
        ]
    for index, question in enumerate(protocol.questions):
        problems += [
            (("questions", index, "ask_if"), f"question {question.id}: ask_if: {p}")
            for p in _check_condition(question.gate, questions)
        ]
    if not any(rule.is_baseline for rule in protocol.rules):
        problems.append((("rules",), "no baseline rule: one rule needs `if: always`"))
    reachable = sorted({rule.level for rule in protocol.rules})
    problems += [
        (("advice",), f"advice is missing for level {level.value}")
        for level in reachable
        if level not in protocol.advice
    ]
    problems += [
        (("safety_net",), f"safety_net is missing for level {level.value}")
        for level in reachable
        if level < Level.EMERGENCY and level not in protocol.safety_net
    ]
    return problems


def _check_condition(condition: Condition, questions: dict[str, Question]) -> list[str]:
    problems = []
    for compare in comparisons(condition):
        name = compare.variable
        if name in INTAKE_FACTS:
            allowed: tuple[str, ...] | str = INTAKE_FACTS[name]
        elif name in questions:
            allowed = questions[name].allowed_values()
        else:
            problems.append(f"unknown question id {name!r}")
            continue
        for value in compare.values:
            if allowed == "text":
                problems.append(f"{name} is a free-text question and cannot be compared")
            elif allowed == "number":
                if not isinstance(value, float) and value != "unsure":
                    problems.append(f"{name} is a number; {value!r} is not")
            elif isinstance(value, float) or value not in allowed:
                problems.append(f"{name} can be {', '.join(allowed)}; not {value!r}")
        if compare.op in ("<", "<=", ">", ">=") and allowed != "number":
            problems.append(f"{name} is not a number and cannot be compared with {compare.op}")
    for compare in comparisons(condition):
        for value in compare.values:
            if isinstance(value, str) and value not in SYMBOLS and compare.variable in INTAKE_FACTS:
                problems.append(f"unknown value {value!r}")
    return problems


class LexiconFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concepts: dict[str, dict[Literal["en", "zh"], list[str]]]

    @field_validator("concepts")
    @classmethod
    def _concept_ids(cls, value: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        for concept, terms in value.items():
            if not re.match(_ID, concept):
                raise ValueError(f"concept id {concept!r} must be snake_case")
            if not any(terms.values()):
                raise ValueError(f"concept {concept} has no terms")
        return value
