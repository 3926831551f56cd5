"""The doctor team's board in Redis: tickets for flagged cases, their audit trails, the forum topic
of each case, the live-update stream and the outbox of actions the bot carries out for patients.

Keys (prefix as the store's, default `wz:`):
  {p}ticket:{case_id}           the ticket JSON
  {p}tickets                    sorted set of case ids by the time they were flagged
  {p}topic:{chat_id}:{topic_id} the case id a forum topic belongs to
  {p}audit:{case_id}            stream: the case's audit trail (append-only)
  {p}team:events                stream: "case X changed" for live views (capped)
  {p}team:outbox                stream (consumer group `bot`): TeamActions for the bot process
  {p}login:{token}              a one-time dashboard login token -> member id (expires)

Every change to a ticket is one optimistic transaction (WATCH/MULTI): the ticket, its audit
entries, the live event and the outbox entry are written together or not at all, so two doctors
claiming at once cannot both win.

The audit trail is append-only: the board has no way to edit or remove an entry. Entries are only
ever added (XADD); the whole trail of a case goes when it expires (`audit_retention_seconds`
after its last entry) or when the patient asks to be forgotten (`forget_cases`, which removes
everything the board keeps about those cases, live events and outbox entries included).
Tickets and topic links expire `retention_seconds` after their last change (a board built
without it keeps whatever expiry a key has). Carried-out outbox entries are deleted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError, WatchError

from dialog.events import Escalation
from dialog.session import Case, utcnow
from dialog.team import (
    AuditEntry,
    AuditKind,
    Member,
    TeamAction,
    Ticket,
    TicketStatus,
    check_claim,
    check_close,
    check_message,
    check_note,
    ticket_for,
)
from safety import Lang, Level

EVENTS_KEPT = 2000
OUTBOX_GROUP = "bot"
Via = Literal["telegram", "dashboard", "bot"]


@dataclass
class Change:
    """What a transaction writes besides the ticket."""

    audit: list[AuditEntry] = field(default_factory=list)
    action: TeamAction | None = None


class TeamBoard:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "wz:",
        retention_seconds: int | None = None,
        audit_retention_seconds: int | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.audit_retention_seconds = audit_retention_seconds

    def _key(self, *parts: str | int) -> str:
        return self.prefix + ":".join(str(part) for part in parts)

    # ---- tickets ---------------------------------------------------------------------

    async def flag(
        self, escalation: Escalation, team: str, case: Case | None, lang: Lang | None
    ) -> tuple[Ticket, bool]:
        """Open the case's ticket, or fold a later escalation into it; True when it is new."""
        created = False

        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            nonlocal created
            detail = escalation.reason + (f" {','.join(escalation.flags)}" if escalation.flags else "")
            if ticket is None or ticket.status is TicketStatus.CLOSED:
                created = ticket is None
                fresh = ticket_for(escalation, team, case, lang)
                if ticket is not None:  # flagged again after a doctor closed it: a new round
                    fresh.chat_id, fresh.topic_id = ticket.chat_id, ticket.topic_id
                    fresh.card_message_id = ticket.card_message_id
                    fresh.opened_at = ticket.opened_at
                    created = True
                ticket = fresh
            else:
                ticket.absorb(escalation, case)
            entry = AuditEntry(
                case_id=escalation.case_id, actor="bot", via="bot", kind="flagged", detail=detail
            )
            return ticket, Change(audit=[entry])

        ticket = await self._transact(escalation.case_id, change, patient_id=escalation.patient_id)
        return ticket, created

    async def get(self, case_id: str) -> Ticket | None:
        raw = await self.redis.get(self._key("ticket", case_id))
        return Ticket.model_validate_json(raw) if raw else None

    async def tickets(
        self,
        *,
        status: TicketStatus | None = None,
        team: str | None = None,
        min_level: Level | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Ticket]:
        """Newest first, filtered."""
        low = since.timestamp() if since else "-inf"
        ids: Any = await self.redis.zrevrangebyscore(self._key("tickets"), "+inf", low)
        found: list[Ticket] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            raws = await self.redis.mget([self._key("ticket", _text(cid)) for cid in chunk])
            expired = [cid for cid, raw in zip(chunk, raws, strict=True) if not raw]
            if expired:
                await self.redis.zrem(self._key("tickets"), *expired)
            for raw in raws:
                if not raw:
                    continue
                ticket = Ticket.model_validate_json(raw)
                if status is not None and ticket.status is not status:
                    continue
                if team is not None and ticket.team != team:
                    continue
                if min_level is not None and (ticket.level is None or ticket.level < min_level):
                    continue
                found.append(ticket)
                if len(found) >= limit:
                    return found
        return found

    async def claim(self, case_id: str, member: Member, *, via: Via) -> Ticket:
        """Raises Refusal (not allowed, already claimed, closed) or LookupError (no such case)."""

        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            check_claim(ticket, member)
            ticket.status, ticket.claimed_by, ticket.claimed_at = TicketStatus.CLAIMED, member.id, utcnow()
            action = _action("claimed", ticket, member)
            return ticket, Change([_entry(case_id, member, via, "claimed")], action)

        return await self._transact(case_id, change)

    async def close(self, case_id: str, member: Member, *, via: Via) -> Ticket:
        """Hand the case back to the bot (the bot tells the patient, if a doctor had it)."""

        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            check_close(ticket, member)
            ticket.status, ticket.closed_at = TicketStatus.CLOSED, utcnow()
            action = _action("closed", ticket, member)
            return ticket, Change([_entry(case_id, member, via, "closed")], action)

        return await self._transact(case_id, change)

    async def message(self, case_id: str, member: Member, text: str, *, via: Via) -> Ticket:
        """A doctor's message for the patient, queued for the bot to deliver."""

        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            check_message(ticket, member)
            action = _action("message", ticket, member, text)
            return ticket, Change([_entry(case_id, member, via, "message", f"{len(text)} chars")], action)

        return await self._transact(case_id, change)

    async def note(self, case_id: str, member: Member, text: str, *, via: Via) -> Ticket:
        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            check_note(member)
            return ticket, Change([_entry(case_id, member, via, "note", text)])

        return await self._transact(case_id, change)

    async def refused(self, case_id: str, actor: str, *, via: Via, why: str) -> None:
        """Someone not allowed tried to act: the attempt goes to the audit trail."""
        entry = AuditEntry(case_id=case_id, actor=actor, via=via, kind="refused", detail=why)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._key("audit", case_id), {"json": entry.model_dump_json()})
            if self.audit_retention_seconds:
                pipe.expire(self._key("audit", case_id), self.audit_retention_seconds)
            pipe.xadd(self._key("team", "events"), {"case": case_id, "kind": "refused"}, maxlen=EVENTS_KEPT)
            await pipe.execute()

    async def set_topic(
        self, case_id: str, chat_id: int, topic_id: int, card_message_id: int | None
    ) -> Ticket:
        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            ticket.chat_id, ticket.topic_id, ticket.card_message_id = chat_id, topic_id, card_message_id
            return ticket, Change()

        ticket = await self._transact(case_id, change)
        await self.redis.set(self._key("topic", chat_id, topic_id), case_id, ex=self.retention_seconds)
        return ticket

    async def case_of_topic(self, chat_id: int, topic_id: int) -> str | None:
        raw = await self.redis.get(self._key("topic", chat_id, topic_id))
        return _text(raw) if raw else None

    async def set_sbar(self, case_id: str, sbar: str) -> Ticket:
        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            ticket.sbar = sbar
            entry = AuditEntry(case_id=case_id, actor="bot", via="bot", kind="sbar", detail="model summary")
            return ticket, Change([entry])

        return await self._transact(case_id, change)

    async def alerted(self, case_id: str, detail: str) -> Ticket:
        """A re-alert went out for an unclaimed urgent case."""

        def change(ticket: Ticket | None) -> tuple[Ticket, Change]:
            ticket = _existing(ticket, case_id)
            ticket.alerts += 1
            ticket.last_alert_at = utcnow()
            entry = AuditEntry(case_id=case_id, actor="system", via="bot", kind="realert", detail=detail)
            return ticket, Change([entry])

        return await self._transact(case_id, change)

    async def due_alerts(self, after: timedelta, *, now: datetime | None = None) -> list[Ticket]:
        """Urgent tickets nobody has claimed for `after` since they were flagged or last re-alerted."""
        now = now or utcnow()
        due = []
        for ticket in await self.tickets(status=TicketStatus.OPEN, limit=10_000):
            last = ticket.last_alert_at or ticket.opened_at
            if ticket.urgent and now - last >= after:
                due.append(ticket)
        return due

    async def audit(self, case_id: str) -> list[AuditEntry]:
        entries: Any = await self.redis.xrange(self._key("audit", case_id)) or []
        return [AuditEntry.model_validate_json(fields[b"json"]) for _, fields in entries]

    # ---- live updates -------------------------------------------------------------------

    async def latest_event_id(self) -> str:
        entries: Any = await self.redis.xrevrange(self._key("team", "events"), count=1)
        return _text(entries[0][0]) if entries else "0-0"

    async def events(self, after: str, *, block_ms: int = 15_000) -> tuple[str, list[tuple[str, str]]]:
        """Case ids changed since event `after` (waiting up to `block_ms`): (last id, [(case, kind)])."""
        found: Any = await self.redis.xread({self._key("team", "events"): after}, block=block_ms, count=100)
        changes: list[tuple[str, str]] = []
        last = after
        for _, entries in found or []:
            for entry_id, fields in entries:
                last = _text(entry_id)
                changes.append((_text(fields[b"case"]), _text(fields[b"kind"])))
        return last, changes

    # ---- the outbox the bot works through -----------------------------------------------

    async def actions(
        self, consumer: str, *, block_ms: int = 5_000, count: int = 20
    ) -> list[tuple[str, TeamAction]]:
        """Team actions for the bot to carry out: first any this consumer took and did not finish
        (it crashed), then new ones. Acknowledge each with `done` once it is carried out."""
        key = self._key("team", "outbox")
        try:
            await self.redis.xgroup_create(key, OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        found = []
        for start in ("0", ">"):
            reply: Any = await self.redis.xreadgroup(
                OUTBOX_GROUP, consumer, {key: start}, count=count, block=None if start == "0" else block_ms
            )
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    if fields:
                        found.append((_text(entry_id), TeamAction.model_validate_json(fields[b"json"])))
            if found:
                break
        return found

    async def done(self, entry_id: str) -> None:
        """The action is carried out: acknowledged and deleted (it names the patient)."""
        key = self._key("team", "outbox")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(key, OUTBOX_GROUP, entry_id)
            pipe.xdel(key, entry_id)
            await pipe.execute()

    # ---- dashboard login tokens -----------------------------------------------------------

    async def issue_login_token(self, member_id: str, *, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(24)
        await self.redis.set(self._key("login", token), member_id, ex=int(ttl.total_seconds()))
        return token

    async def redeem_login_token(self, token: str) -> str | None:
        """The member the token was issued to; a token works once."""
        raw = await self.redis.getdel(self._key("login", token))
        return _text(raw) if raw else None

    # ---- forgetting ---------------------------------------------------------------------------

    async def forget_cases(self, case_ids: Sequence[str]) -> int:
        """Remove everything about these cases (the patient's /forget): tickets, audit trails,
        topic links, and their entries in the live-event stream and the outbox."""
        if not case_ids:
            return 0
        removed = 0
        for case_id in case_ids:
            ticket = await self.get(case_id)
            keys = [self._key("ticket", case_id), self._key("audit", case_id)]
            if ticket is not None and ticket.chat_id is not None and ticket.topic_id is not None:
                keys.append(self._key("topic", ticket.chat_id, ticket.topic_id))
            removed += int(await self.redis.delete(*keys))
            await self.redis.zrem(self._key("tickets"), case_id)
        doomed = set(case_ids)
        events: Any = await self.redis.xrange(self._key("team", "events")) or []
        stale = [entry_id for entry_id, fields in events if fields and _text(fields[b"case"]) in doomed]
        if stale:
            await self.redis.xdel(self._key("team", "events"), *stale)
        outbox = self._key("team", "outbox")
        actions: Any = await self.redis.xrange(outbox) or []
        stale = [
            entry_id
            for entry_id, fields in actions
            if fields and TeamAction.model_validate_json(fields[b"json"]).case_id in doomed
        ]
        if stale:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(outbox, OUTBOX_GROUP, *stale)
                pipe.xdel(outbox, *stale)
                await pipe.execute()
        return removed

    # ---- the one way a ticket changes -----------------------------------------------------------

    async def _transact(
        self,
        case_id: str,
        change: Callable[[Ticket | None], tuple[Ticket, Change]],
        *,
        patient_id: str | None = None,
    ) -> Ticket:
        key = self._key("ticket", case_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    before = Ticket.model_validate_json(raw) if raw else None
                    ticket, extra = change(before.model_copy(deep=True) if before else None)
                    ticket.updated_at = utcnow()
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if self.retention_seconds:
                        pipe.set(key, ticket.model_dump_json(), ex=self.retention_seconds)
                    else:
                        pipe.set(key, ticket.model_dump_json(), keepttl=True)
                    pipe.zadd(self._key("tickets"), {case_id: ticket.opened_at.timestamp()})
                    for entry in extra.audit:
                        pipe.xadd(self._key("audit", case_id), {"json": entry.model_dump_json()})
                    if extra.audit and self.audit_retention_seconds:
                        pipe.expire(self._key("audit", case_id), self.audit_retention_seconds)
                    if patient_id is not None:
                        pipe.sadd(self._key("patient", patient_id), case_id)
                        if self.retention_seconds:
                            pipe.expire(self._key("patient", patient_id), self.retention_seconds)
                    kind = extra.audit[0].kind if extra.audit else "updated"
                    pipe.xadd(
                        self._key("team", "events"), {"case": case_id, "kind": kind}, maxlen=EVENTS_KEPT
                    )
                    if extra.action is not None:
                        pipe.xadd(self._key("team", "outbox"), {"json": extra.action.model_dump_json()})
                    await pipe.execute()
                    return ticket
                except WatchError:
                    continue


def _existing(ticket: Ticket | None, case_id: str) -> Ticket:
    if ticket is None:
        raise LookupError(f"no flagged case {case_id}")
    return ticket


def _action(
    kind: Literal["claimed", "message", "closed"], ticket: Ticket, member: Member, text: str = ""
) -> TeamAction:
    return TeamAction(
        kind=kind,
        case_id=ticket.case_id,
        patient_id=ticket.patient_id,
        member_id=member.id,
        doctor_name=member.name,
        text=text,
    )


def _entry(case_id: str, member: Member, via: Via, kind: AuditKind, detail: str = "") -> AuditEntry:
    return AuditEntry(case_id=case_id, actor=member.id, via=via, kind=kind, detail=detail)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
