"""No stack trace reaches a patient: a failure while handling a message is logged (type and
frames, no message text) and the patient gets the locale's `error.temporary`.

Safety first even then: for a text message the safety screen is tried on its own
(`screen_only`), so an emergency is still answered when the rest of the engine failed.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot.telegram.delivery import Delivery
from bot.telegram.inbound import callback_inbound, message_inbound
from bot.telegram.texts import Texts, language_of
from dialog.events import Inbound
from dialog.service import ConsultationService

log = logging.getLogger(__name__)


class ErrorMiddleware(BaseMiddleware):
    """Inner middleware, outermost on the patient router's messages and taps."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except Exception as exc:
            update: Update | None = data.get("event_update")
            update_id = update.update_id if update else None
            log.error(
                "update %s failed: %s\n%s",
                update_id,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            await self._apologise(event, data, update_id)
            return None

    async def _apologise(self, event: TelegramObject, data: dict[str, Any], update_id: int | None) -> None:
        bot: Bot = data["bot"]
        service: ConsultationService = data["service"]
        delivery: Delivery = data["delivery"]
        texts: Texts = data["texts"]
        inbound: Inbound | None = None
        if isinstance(event, CallbackQuery):  # already answered by the handler, first thing
            chat_id = event.message.chat.id if event.message else event.from_user.id
        elif isinstance(event, Message):
            chat_id = event.chat.id
        else:
            return
        try:  # reading the update may be what failed: then the apology goes out all the same
            if isinstance(event, CallbackQuery):
                inbound = callback_inbound(event, update_id)
            else:
                inbound = message_inbound(event, update_id)
        except Exception as exc:
            log.error("update %s: unreadable (%s)", update_id, type(exc).__name__)
        hint = inbound.lang_hint if inbound else None
        try:
            if inbound is not None and inbound.kind == "text":
                alarms = await service.screen_only(inbound)
                if alarms:
                    await delivery.send(bot, chat_id, alarms)
                    return
        except Exception as exc:
            log.error("update %s: the safety screen failed too: %s", update_id, type(exc).__name__)
        try:
            await delivery.send_text(
                bot, chat_id, texts.get("error.temporary", language_of(hint, service.default_lang))
            )
        except Exception as exc:
            log.error("update %s: could not apologise: %s", update_id, type(exc).__name__)
