"""The doctor team's desk in Telegram: where flagged cases arrive and team actions are carried out.

- `publish(escalation)`: route the case to a team, open (or update) its ticket on the board,
  open a forum topic for it in the team's group with the case card and Claim / Close buttons,
  and ask the model for an SBAR summary in the background (never for a crisis case).
- `relay(...)`: while a doctor has the case, the patient's messages (photos too) are copied
  into the case's topic.
- `work()`: carries out team actions from the board's outbox, whether they were taken in
  Telegram or on the dashboard: tells the patient a doctor joined, passes on the doctor's
  messages, hands the patient back; then updates the topic.
- `realert()`: unclaimed emergency and crisis cases are re-alerted in their topic and directly
  to the team's on-call members every `realert_after`.
"""

from __future__ import annotations

import asyncio
import html
import logging
import socket
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import timedelta

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError
from redis.exceptions import RedisError

from bot.telegram.delivery import Delivery
from bot.telegram.team_card import TeamTexts, card_buttons, card_text, topic_title
from dialog.events import Escalation, Outbound, Relay
from dialog.service import ConsultationService
from dialog.session import Case, utcnow
from dialog.store import StoreUnavailableError
from dialog.team import Roster, Team, TeamAction, Ticket
from safety import Lang
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard

log = logging.getLogger(__name__)

Summariser = Callable[[Case, Lang], Awaitable[str | None]]  # (case, language) -> SBAR text or None
REALERT_LOCK_KEY = "team:realert-lock"
_RETRY_LATER = (
    StoreUnavailableError,
    RedisError,  # Redis down: the worker and the re-alerts wait for it to come back
    TelegramNetworkError,
    TelegramServerError,
    ConnectionError,
    OSError,
)


class TeamDesk:
    def __init__(
        self,
        *,
        bot: Bot,
        board: TeamBoard,
        store: RedisStore,
        roster: Roster,
        service: ConsultationService,
        delivery: Delivery,
        summarise: Summariser | None = None,
        realert_after: timedelta = timedelta(minutes=5),
        consumer: str | None = None,
    ) -> None:
        self.bot = bot
        self.board = board
        self.store = store
        self.roster = roster
        self.service = service
        self.delivery = delivery
        self.summarise = summarise
        self.realert_after = realert_after
        self.consumer = consumer or socket.gethostname()
        self.texts = TeamTexts(lambda: service.rules)
        self._background: set[asyncio.Task[None]] = set()

    # ---- flagged cases -------------------------------------------------------------------

    async def publish(self, escalation: Escalation) -> None:
        session = await self.store.load(escalation.patient_id)
        lang = session.lang if session is not None else None
        case = await self.store.load_case(escalation.case_id)
        team = self.roster.route(escalation, lang)
        if team is None:
            log.warning("escalation of case %s: no team is configured", escalation.case_id)
            return
        ticket, new = await self.board.flag(escalation, team.name, case, lang)
        log.info(
            "case %s flagged to team %s (%s, priority %d)",
            ticket.case_id,
            team.name,
            escalation.reason,
            escalation.priority,
        )
        if team.chat_id is not None:
            if ticket.topic_id is None:
                await self._open_topic(team, ticket, case)
            elif new:  # flagged again after a doctor closed it
                await self._post_card(team, ticket, case, ticket.topic_id)
            else:
                reasons = self.texts.reasons(ticket, team.lang)
                await self._say_in_topic(ticket, self.texts.get("reflagged", team.lang, reasons=reasons))
                await self._refresh_card(ticket)
        if new and self.summarise is not None and case is not None and not case.crisis:
            self._in_background(self._add_summary(team, ticket.case_id, case))

    async def _open_topic(self, team: Team, ticket: Ticket, case: Case | None) -> None:
        assert team.chat_id is not None
        topic_id: int | None = None
        try:
            topic = await self.bot.create_forum_topic(
                team.chat_id, topic_title(self.texts, ticket, team.lang)
            )
            topic_id = topic.message_thread_id
        except TelegramAPIError as exc:  # e.g. the group has no topics: the card goes to the group
            log.error("team %s: could not open a topic (%s)", team.name, exc.message)
        await self._post_card(team, ticket, case, topic_id)

    async def _post_card(self, team: Team, ticket: Ticket, case: Case | None, topic_id: int | None) -> None:
        assert team.chat_id is not None
        try:
            card = await self.bot.send_message(
                team.chat_id,
                card_text(self.texts, ticket, case, self._doctor_name(ticket), team.lang),
                message_thread_id=topic_id,
                parse_mode=ParseMode.HTML,
                reply_markup=card_buttons(self.texts, ticket, team.lang),
            )
        except TelegramAPIError as exc:
            log.error(
                "team %s: the card of case %s was not posted (%s)", team.name, ticket.case_id, exc.message
            )
            return
        await self.board.set_topic(ticket.case_id, team.chat_id, topic_id or 0, card.message_id)

    async def _add_summary(self, team: Team, case_id: str, case: Case) -> None:
        assert self.summarise is not None
        summary = await self.summarise(case, team.lang)
        if not summary:
            return
        ticket = await self.board.set_sbar(case_id, summary)
        await self._refresh_card(ticket)

    async def _refresh_card(self, ticket: Ticket) -> None:
        team = self.roster.team(ticket.team)
        if team is None or team.chat_id is None or ticket.card_message_id is None:
            return
        case = await self.store.load_case(ticket.case_id)
        with suppress(TelegramAPIError):  # "message is not modified", or too old to edit
            await self.bot.edit_message_text(
                text=card_text(self.texts, ticket, case, self._doctor_name(ticket), team.lang),
                chat_id=team.chat_id,
                message_id=ticket.card_message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=card_buttons(self.texts, ticket, team.lang),
            )

    # ---- the patient's messages while a doctor has the case --------------------------------

    async def relay(self, bot: Bot, relay: Relay, chat_id: int, message_id: int | None) -> None:
        ticket = await self.board.get(relay.case_id)
        if ticket is None or ticket.chat_id is None:
            log.error("case %s: a message for the doctor has no topic to go to", relay.case_id)
            return
        team = self.roster.team(ticket.team)
        lang = team.lang if team is not None else "zh"
        thread = ticket.topic_id or None
        try:
            if relay.media is not None and message_id is not None:
                await bot.copy_message(
                    ticket.chat_id,
                    from_chat_id=chat_id,
                    message_id=message_id,
                    message_thread_id=thread,
                    caption=self.texts.get("delivered_media", lang, alias=ticket.alias, media=relay.media),
                )
            elif relay.text:
                await bot.send_message(
                    ticket.chat_id,
                    self.texts.get("patient_says", lang, alias=ticket.alias, text=relay.text),
                    message_thread_id=thread,
                )
        except TelegramAPIError as exc:
            log.error(
                "case %s: the patient's message did not reach the team (%s)", relay.case_id, exc.message
            )

    # ---- team actions (from Telegram or the dashboard) ---------------------------------------

    async def work(self, stop: asyncio.Event) -> None:
        """Carry out team actions until `stop` is set."""
        while not stop.is_set():
            try:
                batch = await self.board.actions(self.consumer, block_ms=1000)
            except _RETRY_LATER as exc:
                log.warning("team actions: storage unavailable (%s)", type(exc).__name__)
                await _sleep_unless(stop, 1.0)
                continue
            for entry_id, action in batch:
                try:
                    await self.carry_out(action)
                except _RETRY_LATER as exc:  # not acknowledged: tried again on the next round
                    log.warning(
                        "team action on case %s failed (%s); retrying", action.case_id, type(exc).__name__
                    )
                    await _sleep_unless(stop, 1.0)
                    break
                except Exception:
                    log.exception("team action on case %s failed", action.case_id)
                try:
                    await self.board.done(entry_id)
                except _RETRY_LATER as exc:  # carried out, not acknowledged: it may come again
                    log.warning(
                        "team action on case %s unacknowledged (%s)", action.case_id, type(exc).__name__
                    )
                    break

    async def carry_out(self, action: TeamAction) -> None:
        outbound: list[Outbound]
        if action.kind == "claimed":
            outbound = await self.service.doctor_joined(action.patient_id, action.doctor_name)
        elif action.kind == "message":
            outbound = await self.service.doctor_says(action.patient_id, action.doctor_name, action.text)
        else:
            outbound = await self.service.doctor_left(action.patient_id, action.doctor_name)
        chat_id = patient_chat(action.patient_id)
        if chat_id is not None and outbound:
            await self.delivery.send(self.bot, chat_id, outbound)
        if action.kind in ("claimed", "closed"):
            ticket = await self.board.get(action.case_id)
            if ticket is not None:
                team = self.roster.team(ticket.team)
                lang = team.lang if team is not None else "zh"
                await self._say_in_topic(ticket, self.texts.get(action.kind, lang, doctor=action.doctor_name))
                await self._refresh_card(ticket)

    # ---- re-alerts -------------------------------------------------------------------------------

    async def realert(self, stop: asyncio.Event, *, every: float | None = None) -> None:
        """Re-alert unclaimed urgent cases until `stop` is set (one process at a time does it)."""
        every = every or min(30.0, self.realert_after.total_seconds() / 2)
        while not stop.is_set():
            try:
                lock = self.board.prefix + REALERT_LOCK_KEY
                if await self.board.redis.set(lock, self.consumer, nx=True, px=int(every * 900)):
                    for ticket in await self.board.due_alerts(self.realert_after):
                        await self._realert(ticket)
            except _RETRY_LATER as exc:
                log.warning("re-alerts: %s", type(exc).__name__)
            except Exception:
                log.exception("re-alerts failed")
            await _sleep_unless(stop, every)

    async def _realert(self, ticket: Ticket) -> None:
        team = self.roster.team(ticket.team)
        if team is None:
            return
        minutes = int((utcnow() - ticket.opened_at).total_seconds() // 60)
        on_call = [member for member in team.members if member.id in team.on_call]
        mentions = " ".join(
            f'<a href="tg://user?id={member.telegram_id}">{html.escape(member.name)}</a>'
            for member in on_call
            if member.telegram_id is not None
        )
        level = self.texts.level(ticket, team.lang)
        await self._say_in_topic(
            ticket,
            self.texts.get(
                "realert", team.lang, minutes=minutes, level=html.escape(level), mentions=mentions
            ),
            html_text=True,
        )
        reached = []
        for member in on_call:
            if member.telegram_id is None:
                continue
            text = self.texts.get(
                "realert_direct", team.lang, alias=ticket.alias, level=level, minutes=minutes
            )
            try:
                await self.bot.send_message(member.telegram_id, text)
                reached.append(member.id)
            except TelegramAPIError as exc:  # they never opened a chat with the bot
                log.warning("on-call %s could not be alerted directly (%s)", member.id, exc.message)
        await self.board.alerted(ticket.case_id, "on call: " + (", ".join(reached) or "none reached"))

    async def announce(self, text: str) -> None:
        """A notice for every team's group (outside any case topic), e.g. a rules edit refused."""
        for team in self.roster.teams:
            if team.chat_id is None:
                continue
            try:
                await self.bot.send_message(team.chat_id, text)
            except TelegramAPIError as exc:
                log.error("team %s: a notice was not posted (%s)", team.name, exc.message)

    # ---- helpers ------------------------------------------------------------------------------

    async def _say_in_topic(self, ticket: Ticket, text: str, *, html_text: bool = False) -> None:
        if ticket.chat_id is None:
            return
        try:
            await self.bot.send_message(
                ticket.chat_id,
                text,
                message_thread_id=ticket.topic_id or None,
                parse_mode=ParseMode.HTML if html_text else None,
            )
        except TelegramAPIError as exc:
            log.error("case %s: could not post in its topic (%s)", ticket.case_id, exc.message)

    def _doctor_name(self, ticket: Ticket) -> str | None:
        found = self.roster.member(ticket.claimed_by) if ticket.claimed_by else None
        return found[1].name if found else None

    def _in_background(self, job: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background team job failed: %s", type(task.exception()).__name__)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def patient_chat(patient_id: str) -> int | None:
    """The Telegram chat of a patient id made by `bot.telegram.inbound.patient_id`."""
    prefix, _, number = patient_id.partition(":")
    return int(number) if prefix == "tg" and number.lstrip("-").isdigit() else None


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
