"""The patient chat: every message and quick-reply tap in a private chat goes to the
consultation service, and what it returns is sent back.

Groups, channels and other bots are not served (this router filters them out). A tap is
answered at once (so the button stops spinning). Only the bot's latest question keeps its
buttons: when the patient taps or types an answer, the previous keyboard is taken away, so an
old question cannot be answered twice by accident. The id of that message is the only thing
kept in FSM data; the consultation itself lives in the service's store.
"""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, Update

from bot.telegram.dedupe import Claim
from bot.telegram.delivery import Delivery
from bot.telegram.errors import ErrorMiddleware
from bot.telegram.inbound import callback_inbound, message_inbound
from bot.telegram.throttle import ThrottleMiddleware, TokenBuckets
from dialog.events import Inbound, Reply
from dialog.service import ConsultationService

KEYBOARD = "keyboard"  # FSM data: the message id of the last keyboard shown


async def consult(
    bot: Bot,
    chat_id: int,
    inbound: Inbound,
    service: ConsultationService,
    delivery: Delivery,
    state: FSMContext,
    *,
    answered: int | None = None,
    message_id: int | None = None,
    claim: Claim | None = None,
) -> None:
    """One turn: the service's answer to `inbound`, sent; `answered` is the message whose
    keyboard the patient tapped (already taken away); `message_id` the patient's message.
    `claim` (bot.telegram.dedupe) keeps the answer until it is sent; a replay after a crash
    sends the kept answer instead of consulting on the same message twice."""
    if claim is not None and claim.replayed is not None:
        actions = claim.replayed
    else:
        async with delivery.typing(bot, chat_id):
            actions = await service.handle(inbound)
        if claim is not None:
            await claim.record(actions)
    if not any(isinstance(action, Reply) for action in actions):  # e.g. a doctor has the case
        await delivery.send(bot, chat_id, actions, message_id=message_id)
        return
    shown = (await state.get_data()).get(KEYBOARD)
    if isinstance(shown, int) and shown != answered:
        await _remove_keyboard(bot, chat_id, shown)
    latest = await delivery.send(
        bot,
        chat_id,
        actions,
        on_unreachable=lambda: service.patient_unreachable(inbound.patient_id),
        message_id=message_id,
    )
    if latest is not None or shown is not None:
        await state.set_data({KEYBOARD: latest} if latest is not None else {})


async def on_message(
    message: Message,
    event_update: Update,
    bot: Bot,
    service: ConsultationService,
    delivery: Delivery,
    state: FSMContext,
    update_claim: Claim | None = None,
) -> None:
    inbound = message_inbound(message, event_update.update_id)
    if inbound is not None:
        await consult(
            bot,
            message.chat.id,
            inbound,
            service,
            delivery,
            state,
            message_id=message.message_id,
            claim=update_claim,
        )


async def on_tap(
    callback: CallbackQuery,
    event_update: Update,
    bot: Bot,
    service: ConsultationService,
    delivery: Delivery,
    state: FSMContext,
    update_claim: Claim | None = None,
) -> None:
    with suppress(TelegramAPIError):
        await callback.answer()
    message = callback.message
    if message is None:  # not from a chat message (the router's filter keeps these out)
        return
    if isinstance(message, Message) and message.reply_markup is not None:
        await _remove_keyboard(bot, message.chat.id, message.message_id)
    inbound = callback_inbound(callback, event_update.update_id)
    await consult(
        bot,
        message.chat.id,
        inbound,
        service,
        delivery,
        state,
        answered=message.message_id,
        claim=update_claim,
    )


async def _remove_keyboard(bot: Bot, chat_id: int, message_id: int) -> None:
    with suppress(TelegramAPIError):  # too old to edit, already gone: nothing to do
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)


async def on_edit(
    message: Message, event_update: Update, bot: Bot, service: ConsultationService, delivery: Delivery
) -> None:
    """An edited message is screened like a new one: an emergency or crisis written into an edit
    is answered at once. Nothing else changes (the consultation went on from the original)."""
    inbound = message_inbound(message, event_update.update_id)
    if inbound is None or inbound.kind != "text":
        return
    actions = await service.screen_only(inbound)
    if actions:
        await delivery.send(
            bot,
            message.chat.id,
            actions,
            on_unreachable=lambda: service.patient_unreachable(inbound.patient_id),
        )


def create_router(buckets: TokenBuckets) -> Router:
    """The patient router; a new one per dispatcher (aiogram attaches a router to one parent)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE, F.from_user.is_bot.is_(False))
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE, F.from_user.is_bot.is_(False))
    router.message.middleware(ErrorMiddleware())
    router.message.middleware(ThrottleMiddleware(buckets))
    router.callback_query.middleware(ErrorMiddleware())
    router.edited_message.filter(F.chat.type == ChatType.PRIVATE, F.from_user.is_bot.is_(False))
    router.edited_message.middleware(ErrorMiddleware())
    router.message.register(on_message)
    router.edited_message.register(on_edit)
    router.callback_query.register(on_tap)
    return router
