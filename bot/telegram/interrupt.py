"""A patient who writes or taps again has moved on: the language model stops rewording their
turn in hand, so that turn goes out at once with the protocol's own text, and the new message
(perhaps an emergency) does not wait behind a slow model for the patient's lock.

The consultation service does the same when a message reaches `handle`; here it happens on
arrival, before the patient's event lock, which a new message would otherwise wait for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.types import Chat, TelegramObject, User

from bot.telegram.inbound import patient_id
from dialog.service import ConsultationService


class Interrupt(BaseMiddleware):
    """Outer middleware of the dispatcher's updates, placed before the FSM (lock) middleware."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        service: ConsultationService = data["service"]
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        private = chat is not None and chat.type == ChatType.PRIVATE
        if private and user is not None and not user.is_bot:
            service.interrupt(patient_id(user))
        return await handler(event, data)
