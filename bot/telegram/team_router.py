"""The team groups: Claim / Close on a case card, and doctors' messages in a case's topic.

Only members on the team's allow-list act, and only as their role allows (`dialog.team`);
everyone else is refused, and every attempt, allowed or not, goes to the case's audit trail.
What the patient must be told is carried out by the desk from the board's outbox, so a claim
made here and one made on the dashboard take the same path.
"""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.rules_keeper import RulesKeeper
from bot.telegram.team_card import CLAIM, CLOSE
from bot.telegram.team_desk import TeamDesk
from dialog.team import Action, Member, Refusal, Team

log = logging.getLogger(__name__)

MAX_DOCTOR_TEXT = 4000


def _member(team: Team, telegram_id: int) -> Member | None:
    return next((m for m in team.members if m.telegram_id == telegram_id), None)


async def on_card_tap(callback: CallbackQuery, team_desk: TeamDesk) -> None:
    message = callback.message
    data = callback.data or ""
    team = team_desk.roster.team_of_chat(message.chat.id) if message is not None else None
    if team is None:
        with suppress(TelegramAPIError):
            await callback.answer()
        return
    kind = "claim" if data.startswith(CLAIM) else "close"
    case_id = data.removeprefix(CLAIM if kind == "claim" else CLOSE)
    texts, lang = team_desk.texts, team.lang
    member = _member(team, callback.from_user.id)
    ticket = await team_desk.board.get(case_id)
    if ticket is None or ticket.team != team.name:
        await _answer(callback, texts.get("unknown_topic", lang))
        return
    try:
        if member is None:
            raise Refusal(texts.get("not_member", lang))
        if kind == "claim":
            await team_desk.board.claim(case_id, member, via="telegram")
        else:
            await team_desk.board.close(case_id, member, via="telegram")
    except Refusal as refusal:
        actor = member.id if member is not None else f"tg:{callback.from_user.id}"
        await team_desk.board.refused(case_id, actor, via="telegram", why=f"{kind}: {refusal}")
        await _answer(callback, texts.get("refused", lang, why=refusal))
        return
    with suppress(TelegramAPIError):
        await callback.answer()


async def on_topic_message(message: Message, team_desk: TeamDesk) -> None:
    team = team_desk.roster.team_of_chat(message.chat.id)
    user = message.from_user
    if team is None or user is None or message.message_thread_id is None:
        return
    case_id = await team_desk.board.case_of_topic(message.chat.id, message.message_thread_id)
    if case_id is None:
        return
    text = (message.text or message.caption or "").strip()
    if not text:  # doctors' photos and files are not passed on yet
        return
    member = _member(team, user.id)
    try:
        if member is None:
            raise Refusal(team_desk.texts.get("not_member", team.lang))
        await team_desk.board.message(case_id, member, text[:MAX_DOCTOR_TEXT], via="telegram")
    except Refusal as refusal:
        actor = member.id if member is not None else f"tg:{user.id}"
        await team_desk.board.refused(case_id, actor, via="telegram", why=f"message: {refusal}")
        with suppress(TelegramAPIError):
            await message.reply(team_desk.texts.get("refused", team.lang, why=refusal))


async def on_reload(message: Message, team_desk: TeamDesk, rules_keeper: RulesKeeper | None) -> None:
    """/reload from an operator: check the rules on disk and make them live if they pass."""
    team = team_desk.roster.team_of_chat(message.chat.id)
    user = message.from_user
    if team is None or user is None:
        return
    member = _member(team, user.id)
    if member is None or not member.may(Action.RELOAD) or rules_keeper is None:
        why = (
            team_desk.texts.get("not_member", team.lang)
            if member is None
            else f"a {member.role.value} may not reload"
        )
        log.info("/reload refused for %s", member.id if member else f"tg:{user.id}")
        with suppress(TelegramAPIError):
            await message.reply(team_desk.texts.get("refused", team.lang, why=why))
        return
    event = await rules_keeper.reload(member.id)
    if event is None:  # nothing changed on disk; the keeper reports changes itself
        with suppress(TelegramAPIError):
            await message.reply(f"Rules {rules_keeper.service.live_rules.version}: no change on disk.")


async def _answer(callback: CallbackQuery, text: str) -> None:
    with suppress(TelegramAPIError):
        await callback.answer(text, show_alert=True)


def create_team_router() -> Router:
    router = Router(name=__name__)
    groups = F.chat.type.in_({ChatType.SUPERGROUP, ChatType.GROUP})
    router.message.filter(groups, F.from_user.is_bot.is_(False))
    router.callback_query.filter(F.message.chat.type.in_({ChatType.SUPERGROUP, ChatType.GROUP}))
    router.callback_query.register(on_card_tap, F.data.startswith(CLAIM) | F.data.startswith(CLOSE))
    router.message.register(on_reload, Command("reload"))
    router.message.register(on_topic_message)
    return router
