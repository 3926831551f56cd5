"""What the pages show, computed from tickets, cases and audit trails (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialog.session import Case, utcnow
from dialog.team import AuditEntry, Ticket, TicketStatus
from safety import Level

LEVEL_LABELS: dict[Level, tuple[str, str]] = {
    Level.EMERGENCY_AMBULANCE: ("Ambulance now", "立即拨打急救电话"),
    Level.EMERGENCY: ("Emergency department now", "立即去急诊"),
    Level.CONSULTATION_24: ("Doctor within 24 h", "24小时内就医"),
    Level.CONSULTATION: ("Family doctor", "近期看家庭医生"),
    Level.SELF_CARE: ("Self-care", "居家自我护理"),
}

LEVELS_DESCENDING: tuple[Level, ...] = tuple(sorted(Level, reverse=True))

REASON_LABELS: dict[str, str] = {
    "red_flag": "red flag",
    "crisis": "crisis",
    "patient_request": "asked for a doctor",
    "level": "triage level",
    "low_confidence": "unsure triage",
}

SINCE_CHOICES: dict[str, tuple[str, timedelta]] = {
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}

STATUS_CHOICES: dict[str, str] = {
    "active": "open or claimed",
    "open": "open",
    "claimed": "claimed",
    "closed": "closed",
    "any": "any status",
}

TIMELINE_KINDS = frozenset({"flagged", "claimed", "closed", "realert", "sbar"})


@dataclass(frozen=True)
class Filters:
    """The list's filters, read from the query string; anything unknown means "any"."""

    status: str = "active"
    level: Level | None = None
    team: str | None = None
    since: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], teams: set[str]) -> Filters:
        status = query.get("status", "active")
        level_raw = query.get("level", "")
        team = query.get("team", "")
        since = query.get("since", "")
        return cls(
            status=status if status in STATUS_CHOICES else "active",
            level=Level(level_raw) if level_raw in Level._value2member_map_ else None,
            team=team if team in teams else None,
            since=since if since in SINCE_CHOICES else None,
        )

    @property
    def board_status(self) -> TicketStatus | None:
        return TicketStatus(self.status) if self.status in TicketStatus._value2member_map_ else None

    def since_time(self, now: datetime | None = None) -> datetime | None:
        if self.since is None:
            return None
        return (now or utcnow()) - SINCE_CHOICES[self.since][1]

    def admits(self, ticket: Ticket) -> bool:
        """What the board's own filters cannot say: "active" is open or claimed."""
        return not (self.status == "active" and ticket.status is TicketStatus.CLOSED)

    def query(self) -> dict[str, str]:
        found = {"status": self.status}
        if self.level is not None:
            found["level"] = self.level.value
        if self.team is not None:
            found["team"] = self.team
        if self.since is not None:
            found["since"] = self.since
        return found


def sort_tickets(tickets: list[Ticket]) -> list[Ticket]:
    """Open before claimed before closed; within those, the most urgent first, then the newest."""
    order = {TicketStatus.OPEN: 0, TicketStatus.CLAIMED: 1, TicketStatus.CLOSED: 2}
    return sorted(tickets, key=lambda t: (order[t.status], t.priority, -t.opened_at.timestamp()))


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    title: str
    detail: str = ""


def timeline(ticket: Ticket, audit: list[AuditEntry]) -> list[TimelineItem]:
    """Opened, flagged again, claimed, closed, re-alerts and the summary, oldest first."""
    items: list[TimelineItem] = []
    opened = False
    for entry in audit:
        if entry.kind not in TIMELINE_KINDS:
            continue
        if entry.kind == "flagged":
            title = "flagged again" if opened else "opened"
            opened = True
            items.append(TimelineItem(entry.at, "flagged", title, _reasons(entry.detail)))
        elif entry.kind == "claimed":
            items.append(TimelineItem(entry.at, "claimed", f"claimed by {entry.actor}", f"via {entry.via}"))
        elif entry.kind == "closed":
            items.append(TimelineItem(entry.at, "closed", f"closed by {entry.actor}", f"via {entry.via}"))
        elif entry.kind == "realert":
            items.append(TimelineItem(entry.at, "realert", "re-alert sent", entry.detail))
        else:
            items.append(TimelineItem(entry.at, "sbar", "summary written", entry.detail))
    if not opened:
        items.append(TimelineItem(ticket.opened_at, "flagged", "opened"))
    return sorted(items, key=lambda item: item.at)


def _reasons(detail: str) -> str:
    reason, _, flags = detail.partition(" ")
    label = REASON_LABELS.get(reason, reason)
    return f"{label}: {flags.replace(',', ', ')}" if flags else label


@dataclass
class Reasoning:
    """Why the bot placed the case where it did: the level, the rule and what it read."""

    level: Level | None
    rule: str | None
    reason: str | None
    read: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    red_flags: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    from_text: list[str] = field(default_factory=list)
    max_temperature: float | None = None
    crisis: bool = False


def reasoning(ticket: Ticket, case: Case | None) -> Reasoning:
    if case is None:
        return Reasoning(level=ticket.level, rule=ticket.rule, reason=None, red_flags=list(ticket.flags))
    disposition = case.disposition
    return Reasoning(
        level=case.level or ticket.level,
        rule=case.rule or ticket.rule,
        reason=disposition.reason if disposition else None,
        read={key: _value(value) for key, value in (disposition.read if disposition else {}).items()},
        answers={key: _value(value) for key, value in case.answers.items()},
        red_flags=sorted(set(case.red_flags) | set(ticket.flags)),
        protocols=list(case.protocols),
        present=list(case.present),
        from_text=list(case.answered_from_text),
        max_temperature=case.max_temperature,
        crisis=case.crisis,
    )


def _value(value: str | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def age_text(age: float | str | None) -> str:
    if age is None:
        return "age ?"
    if isinstance(age, float | int):
        return f"{int(age)} y" if float(age).is_integer() else f"{age:.1f} y"
    return f"age {age}"


def level_label(level: Level | None) -> str:
    if level is None:
        return "no level yet"
    english, chinese = LEVEL_LABELS[level]
    return f"{english} · {chinese}"
