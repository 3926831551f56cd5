"""What a consultation remembers between messages: the session and the case record.

Both are pydantic models serialised as JSON into storage; everything a restarted process needs
to resume a consultation at its step is here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dialog.states import State
from safety import Lang, Level

AnswerValue = str | float
Who = Literal["self", "child", "other"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Turn(BaseModel):
    """One line of the transcript. `private` turns (crisis) are never shown to a model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["patient", "bot", "doctor", "system"]
    text: str
    at: datetime = Field(default_factory=utcnow)
    private: bool = False


class Pending(BaseModel):
    """What the bot asked last and is waiting for."""

    model_config = ConfigDict(frozen=True)

    kind: Literal[
        "consent", "who", "age", "sex", "complaint", "question", "open", "safety", "forget", "none"
    ] = "none"
    question_id: str | None = None
    flag_id: str | None = None
    attempts: int = 0


class Disposition(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: Level
    rule: str
    protocol: str | None
    reason: str
    read: dict[str, AnswerValue] = Field(default_factory=dict)
    red_flags: tuple[str, ...] = ()
    at: datetime = Field(default_factory=utcnow)


class Case(BaseModel):
    """One consultation about one problem of one person."""

    case_id: str
    patient_id: str
    rules_version: str
    started_at: datetime = Field(default_factory=utcnow)
    who: Who | None = None
    age: float | Literal["unsure"] | None = None
    sex: Literal["M", "F", "unsure"] | None = None
    complaint: str | None = None
    present: list[str] = Field(default_factory=list)
    max_temperature: float | None = None
    answers: dict[str, AnswerValue] = Field(default_factory=dict)
    answered_from_text: list[str] = Field(default_factory=list)
    asked: list[str] = Field(default_factory=list)
    protocols: list[str] = Field(default_factory=list)
    done_protocols: list[str] = Field(default_factory=list)
    unclear_attempts: int = 0
    open_question_asked: bool = False
    level: Level | None = None
    rule: str | None = None
    alarm_level: Level | None = None  # from red flags: never lowered
    alarm_rule: str | None = None
    restated: bool = False  # an answer given as `unsure` has since been stated: decide afresh
    red_flags: list[str] = Field(default_factory=list)
    crisis: bool = False
    disposition: Disposition | None = None
    escalated: list[str] = Field(default_factory=list)
    transcript: list[Turn] = Field(default_factory=list)

    @property
    def numeric_age(self) -> float | None:
        return self.age if isinstance(self.age, float | int) else None

    @property
    def known_sex(self) -> str | None:
        return self.sex if self.sex in ("M", "F") else None

    def facts(self) -> dict[str, AnswerValue]:
        """Answers plus the intake facts, as conditions read them."""
        facts: dict[str, AnswerValue] = dict(self.answers)
        if self.age is not None:
            facts["age"] = self.age
        if self.sex is not None:
            facts["sex"] = self.sex
        if self.who is not None:
            facts["who"] = self.who
        return facts

    def raise_level(self, level: Level, rule: str) -> None:
        """Levels only go up within a case."""
        if self.level is None or level > self.level:
            self.level, self.rule = level, rule

    def raise_alarm_level(self, level: Level, rule: str) -> None:
        """A red flag's level: the case never goes below it again."""
        if self.alarm_level is None or level > self.alarm_level:
            self.alarm_level, self.alarm_rule = level, rule
        self.raise_level(level, rule)

    def decide_afresh(self) -> None:
        """Drop the levels that protocols gave so far (alarms stay): an answer given as `unsure`
        has been stated since, and the level must follow what the patient now says."""
        self.level, self.rule = self.alarm_level, self.alarm_rule
        self.restated = False


class Session(BaseModel):
    """A patient's standing with the bot; persisted after every turn."""

    patient_id: str
    lang: Lang | None = None
    lang_fixed: bool = False
    state: State = State.CONSENT
    consented: bool = False
    pending: Pending = Field(default_factory=Pending)
    held_text: str | None = None  # a message written before consent, dropped if declined
    case: Case | None = None
    updated_at: datetime = Field(default_factory=utcnow)
