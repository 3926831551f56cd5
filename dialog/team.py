"""The family-doctor team's side of a flagged case: who is on which team, which team gets a case,
the ticket a flagged case becomes, who may do what with it, and the audit trail.

Pure data and rules. `storage` persists tickets and the audit trail; the Telegram team router
(`bot/telegram/team.py`) and the dashboard act on them; the consultation service only learns
that a doctor joined, spoke or left.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialog.events import Escalation, EscalationReason
from dialog.session import Case, utcnow
from safety import Lang, Level


class Role(StrEnum):
    DOCTOR = "doctor"  # may claim a case, talk to the patient, close it
    OPERATOR = "operator"  # runs the bot and the rules; sees cases and writes notes, never talks to patients


class Action(StrEnum):
    VIEW = "view"
    CLAIM = "claim"
    CLOSE = "close"
    NOTE = "note"
    MESSAGE = "message"  # write to the patient
    RELOAD = "reload"  # operators: reload the rules


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.DOCTOR: frozenset({Action.VIEW, Action.CLAIM, Action.CLOSE, Action.NOTE, Action.MESSAGE}),
    Role.OPERATOR: frozenset({Action.VIEW, Action.NOTE, Action.RELOAD}),
}


class Member(BaseModel):
    """An allow-listed team member. `id` is a short handle (login name, audit actor)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_.-]{1,32}$")
    name: str = Field(min_length=1, max_length=64)  # shown to patients: "Dr Li has joined"
    role: Role
    telegram_id: int | None = None
    password_hash: str | None = None  # dashboard login (scrypt, see `dashboard/auth.py`)

    def may(self, action: Action) -> bool:
        return action in _ALLOWED[self.role]


class Team(BaseModel):
    """A team: its Telegram forum supergroup, members, on-call list and which cases it takes.
    Empty filters admit everything; the first team (in configuration order) that admits a case
    gets it, and the first team gets whatever no team admits."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    chat_id: int | None = None  # the forum supergroup; None: dashboard only
    lang: Lang = "zh"  # the language of case cards and alerts
    members: tuple[Member, ...] = ()
    on_call: tuple[str, ...] = ()  # member ids re-alerted directly when a case waits too long
    languages: tuple[Lang, ...] = ()
    reasons: tuple[EscalationReason, ...] = ()
    min_level: Level | None = None

    @model_validator(mode="after")
    def _on_call_are_members(self) -> Team:
        ids = {member.id for member in self.members}
        missing = [member_id for member_id in self.on_call if member_id not in ids]
        if missing:
            raise ValueError(f"on_call names unknown members: {', '.join(missing)}")
        return self

    def admits(self, escalation: Escalation, lang: Lang | None) -> bool:
        if self.languages and lang not in self.languages:
            return False
        if self.reasons and escalation.reason not in self.reasons:
            return False
        if self.min_level is not None and escalation.reason in ("level", "low_confidence"):
            return escalation.level is not None and escalation.level >= self.min_level
        return True


class Roster(BaseModel):
    """Every team. Member ids and Telegram ids are unique across teams."""

    model_config = ConfigDict(frozen=True)

    teams: tuple[Team, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Roster:
        names = [team.name for team in self.teams]
        ids = [member.id for team in self.teams for member in team.members]
        telegram = [str(m.telegram_id) for t in self.teams for m in t.members if m.telegram_id is not None]
        for what, values in (("team name", names), ("member id", ids), ("telegram_id", telegram)):
            doubled = sorted({str(v) for v in values if values.count(v) > 1})
            if doubled:
                raise ValueError(f"{what} used twice: {', '.join(doubled)}")
        return self

    def route(self, escalation: Escalation, lang: Lang | None) -> Team | None:
        if not self.teams:
            return None
        return next((team for team in self.teams if team.admits(escalation, lang)), self.teams[0])

    def team(self, name: str) -> Team | None:
        return next((team for team in self.teams if team.name == name), None)

    def team_of_chat(self, chat_id: int) -> Team | None:
        return next((team for team in self.teams if team.chat_id == chat_id), None)

    def member(self, member_id: str) -> tuple[Team, Member] | None:
        for team in self.teams:
            for member in team.members:
                if member.id == member_id:
                    return team, member
        return None

    def member_by_telegram(self, telegram_id: int) -> tuple[Team, Member] | None:
        for team in self.teams:
            for member in team.members:
                if member.telegram_id == telegram_id:
                    return team, member
        return None


class TicketStatus(StrEnum):
    OPEN = "open"  # flagged, nobody has it yet
    CLAIMED = "claimed"  # a doctor is talking to the patient
    CLOSED = "closed"  # handed back to the bot


URGENT_REASONS: frozenset[str] = frozenset({"red_flag", "crisis"})


class Ticket(BaseModel):
    """A flagged case as the team sees it: one per case, updated by every later escalation."""

    case_id: str
    patient_id: str
    alias: str  # a pseudonym shown instead of the patient's name
    team: str
    status: TicketStatus = TicketStatus.OPEN
    reasons: list[EscalationReason] = Field(default_factory=list)
    priority: int  # 0 is the highest (crisis)
    level: Level | None = None
    flags: list[str] = Field(default_factory=list)
    lang: Lang | None = None
    complaint: str | None = None
    age: float | str | None = None
    sex: str | None = None
    rule: str | None = None
    opened_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = None  # member id
    claimed_at: datetime | None = None
    closed_at: datetime | None = None
    chat_id: int | None = None  # the team's group, once the case has a topic there
    topic_id: int | None = None  # the case's forum topic in the team's group
    card_message_id: int | None = None
    alerts: int = 0  # re-alerts sent while unclaimed
    last_alert_at: datetime | None = None
    sbar: str | None = None  # the model's summary for the doctor, when it wrote one

    @property
    def urgent(self) -> bool:
        """Emergency and crisis cases: re-alerted while nobody claims them."""
        return bool(URGENT_REASONS.intersection(self.reasons)) or (
            self.level is not None and self.level >= Level.EMERGENCY
        )

    def absorb(self, escalation: Escalation, case: Case | None) -> None:
        """A later escalation of the same case: more reasons, a higher priority, a newer picture."""
        if escalation.reason not in self.reasons:
            self.reasons.append(escalation.reason)
        self.priority = min(self.priority, escalation.priority)
        if escalation.level is not None and (self.level is None or escalation.level > self.level):
            self.level = escalation.level
        self.flags = sorted(set(self.flags) | set(escalation.flags))
        if case is not None:
            self.describe(case)
        self.updated_at = utcnow()

    def describe(self, case: Case) -> None:
        self.complaint = case.complaint or self.complaint
        self.age = case.age if case.age is not None else self.age
        self.sex = case.sex or self.sex
        self.rule = case.rule or self.rule
        if case.level is not None and (self.level is None or case.level > self.level):
            self.level = case.level
        self.flags = sorted(set(self.flags) | set(case.red_flags))


def ticket_for(escalation: Escalation, team: str, case: Case | None, lang: Lang | None) -> Ticket:
    ticket = Ticket(
        case_id=escalation.case_id,
        patient_id=escalation.patient_id,
        alias=patient_alias(escalation.patient_id),
        team=team,
        reasons=[escalation.reason],
        priority=escalation.priority,
        level=escalation.level,
        flags=list(escalation.flags),
        lang=lang,
    )
    if case is not None:
        ticket.describe(case)
    return ticket


def patient_alias(patient_id: str) -> str:
    """A stable pseudonym: the same one the service uses in its logs."""
    return "P-" + uuid.uuid5(uuid.NAMESPACE_URL, patient_id).hex[:8]


AuditKind = Literal[
    "flagged", "claimed", "closed", "note", "message", "realert", "refused", "sbar", "forgotten"
]


class AuditEntry(BaseModel):
    """One line of a case's audit trail: who did what, when. Never edited or removed (except by
    the patient's /forget, which removes the case itself)."""

    model_config = ConfigDict(frozen=True)

    at: datetime = Field(default_factory=utcnow)
    case_id: str
    actor: str  # a member id, or "bot" / "system"
    via: Literal["telegram", "dashboard", "bot"]
    kind: AuditKind
    detail: str = ""  # notes keep their text; for messages, only their length


class Refusal(Exception):  # noqa: N818 (a domain outcome, named as the team reads it)
    """A team action that is not allowed; the message says why (shown to the member)."""


def check_claim(ticket: Ticket, member: Member | None) -> None:
    _check(member, Action.CLAIM)
    if ticket.status is TicketStatus.CLAIMED:
        raise Refusal(f"already claimed by {ticket.claimed_by}")
    if ticket.status is TicketStatus.CLOSED:
        raise Refusal("the case is closed")


def check_close(ticket: Ticket, member: Member | None) -> None:
    _check(member, Action.CLOSE)
    if ticket.status is TicketStatus.CLOSED:
        raise Refusal("the case is already closed")


def check_message(ticket: Ticket, member: Member | None) -> None:
    _check(member, Action.MESSAGE)
    assert member is not None
    if ticket.status is not TicketStatus.CLAIMED or ticket.claimed_by != member.id:
        raise Refusal("claim the case before writing to the patient")


def check_note(member: Member | None) -> None:
    _check(member, Action.NOTE)


def _check(member: Member | None, action: Action) -> None:
    if member is None:
        raise Refusal("you are not on the team's list")
    if not member.may(action):
        raise Refusal(f"a {member.role.value} may not {action.value}")


class TeamAction(BaseModel):
    """What the bot must do for the patient after a team member acted (from Telegram or the
    dashboard): tell them a doctor joined, pass on a doctor's message, or hand them back."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["claimed", "message", "closed"]
    case_id: str
    patient_id: str
    member_id: str
    doctor_name: str
    text: str = ""
    at: datetime = Field(default_factory=utcnow)
