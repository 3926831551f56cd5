"""A Bot API session that records every call and answers the few methods the patient router
may use; any other method is an unexpected call and fails the test (in the spirit of aiogram's
own tests/mocked_bot.py). Faults are queued per method as HTTP statuses and go through
aiogram's own response checking, so the bot sees exactly the exceptions Telegram would cause."""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    GetMe,
    SendChatAction,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, Message, User

TIMEOUT = "timeout"
_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after 1",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


_ANSWERED = (
    SendMessage,
    SendChatAction,
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    SetMyCommands,
    GetMe,
    DeleteWebhook,
)


class UnexpectedCallError(AssertionError):
    pass


class RecordingSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.unexpected: list[str] = []
        self.delivered: list[SendMessage] = []  # messages the fake Telegram accepted
        self._faults: dict[type[TelegramMethod[Any]], deque[int | str]] = defaultdict(deque)
        self._message_id = 1000

    def fail(self, method: type[TelegramMethod[Any]], *faults: int | str) -> None:
        """The next calls of `method` fail with these HTTP statuses (or TIMEOUT), in order."""
        self._faults[method].extend(faults)

    def calls(self, method: type[TelegramMethod[Any]] | None = None) -> list[TelegramMethod[Any]]:
        return [r for r in self.requests if method is None or isinstance(r, method)]

    def sent(self) -> list[SendMessage]:
        """Messages delivered (failed attempts are in `requests` only)."""
        return list(self.delivered)

    @property
    def last_message_id(self) -> int:
        """The id of the last message delivered."""
        return self._message_id

    def names(self) -> list[str]:
        return [r.__api_method__ for r in self.requests]

    def clear(self) -> None:
        self.requests.clear()
        self.delivered.clear()

    async def close(self) -> None:
        pass

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (BaseSession's signature)
    ) -> TelegramType:
        self.requests.append(method)
        if not isinstance(
            method,
            (
                SendMessage,
                SendChatAction,
                AnswerCallbackQuery,
                EditMessageReplyMarkup,
                SetMyCommands,
                GetMe,
                DeleteWebhook,
            ),
        ):
            self.unexpected.append(method.__api_method__)
            raise UnexpectedCallError(method.__api_method__)
        queue = self._faults.get(type(method))
        if queue:
            fault = queue.popleft()
            if fault == TIMEOUT:
                raise TelegramNetworkError(method=method, message="Request timeout error")
            status = int(fault)
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": _DESCRIPTIONS[status]}
            if status == 429:
                body["parameters"] = {"retry_after": 1}
            self.check_response(bot, method, status, json.dumps(body))
        return self._result(bot, method)  # type: ignore[return-value]

    def _result(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage):
            self.delivered.append(method)
            self._message_id += 1
            return Message(
                message_id=self._message_id,
                date=int(time.time()),
                chat=Chat(id=int(method.chat_id), type="private"),
                from_user=User(id=bot.id, is_bot=True, first_name="wenzhen"),
                text=method.text,
                reply_markup=method.reply_markup,
            )
        if isinstance(method, GetMe):
            return User(id=bot.id, is_bot=True, first_name="wenzhen", username="wenzhen_bot")
        return True

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 (BaseSession's signature)
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise UnexpectedCallError("download")
        yield b""
