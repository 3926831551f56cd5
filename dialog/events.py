"""What frontends send into the consultation service and what comes back.

Frontends (Telegram, terminal, simulator) turn their own events into an `Inbound` and render the
returned actions; they never reach into the engine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from safety import Lang, Level

Command = Literal["start", "restart", "help", "human", "forget", "language", "resume"]
MediaKind = Literal["photo", "voice", "sticker", "document", "location", "video", "other"]
EscalationReason = Literal["red_flag", "crisis", "patient_request", "level", "low_confidence"]


class Inbound(BaseModel):
    model_config = ConfigDict(frozen=True)

    patient_id: str = Field(min_length=1, max_length=128)
    kind: Literal["text", "button", "command", "media"]
    text: str = ""
    data: str = ""  # button payload, as produced by `Button.data`
    command: Command | None = None
    media: MediaKind | None = None
    lang_hint: str | None = None  # e.g. the Telegram client's language code
    update_id: int | None = None


class Button(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    data: str = Field(max_length=64)  # Telegram's callback-data limit


class Expect(BaseModel):
    """What the bot's message asks for, so a frontend or the simulator can answer it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["consent", "who", "age", "sex", "complaint", "question", "open", "safety", "forget", "none"]
    question_id: str | None = None
    concept: str | None = None
    question_type: Literal["yes_no", "choice", "number", "text"] | None = None
    quantity: str | None = None
    unit: str | None = None
    choices: tuple[str, ...] = ()


class TriageOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: Level
    rule: str
    protocol: str | None
    red_flag: bool
    flags: tuple[str, ...] = ()


class Reply(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["reply"] = "reply"
    text: str
    lang: Lang
    purpose: Literal[
        "info", "consent", "question", "advice", "emergency", "crisis", "safety", "error", "doctor"
    ] = "info"
    buttons: tuple[Button, ...] = ()
    expect: Expect = Expect(kind="none")
    triage: TriageOutcome | None = None
    urgent: bool = False  # emergency and crisis replies: retried until delivered


class Escalation(BaseModel):
    """A case the family-doctor team must see."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["escalation"] = "escalation"
    case_id: str
    patient_id: str
    reason: EscalationReason
    priority: int  # 0 is the highest
    level: Level | None = None
    flags: tuple[str, ...] = ()


class Relay(BaseModel):
    """A doctor has the case: pass the patient's message (text or media) on to the team."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["relay"] = "relay"
    case_id: str
    patient_id: str
    text: str = ""
    media: MediaKind | None = None


Outbound = Annotated[Reply | Escalation | Relay, Field(discriminator="kind")]
