"""A fake Telegram Bot API server over real HTTP (aiohttp, 127.0.0.1), for end-to-end tests and
the benchmark: the real bot process talks to it through TELEGRAM_API_BASE.

It keeps the update queue (getUpdates with offsets and long polling, or pushes to a webhook with
the secret-token header, retrying until the bot answers 200), records every call and every
message the bot sends, and can be told to fail: `fail("sendMessage", 429, 500, ...)` or
`block(chat_id)` (403). Patients are played by `FakeUser`, which sends a message or taps a
button and waits, with a timeout, for the bot message that ends its turn.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.telegram_fixtures import updates

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_DESCRIPTIONS = {
    400: "Bad Request: message to edit not found",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after 1",
    504: "Gateway Timeout",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class Sent:
    """A message the bot sent."""

    message_id: int
    chat_id: int
    text: str
    buttons: list[list[tuple[str, str]]]  # rows of (label, callback data)
    at: float
    thread_id: int | None = None  # the forum topic of a group message
    copied_from: int | None = None  # copyMessage: the message id copied

    @property
    def data(self) -> list[str]:
        return [data for row in self.buttons for _, data in row]

    def markup(self) -> dict[str, Any] | None:
        if not self.buttons:
            return None
        return {
            "inline_keyboard": [
                [{"text": label, "callback_data": data} for label, data in row] for row in self.buttons
            ]
        }


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


class FakeBotAPI:
    def __init__(self, token: str = "123456:TEST-wenzhen") -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.calls: list[Call] = []
        self.messages: list[Sent] = []
        self._by_chat: dict[int, list[Sent]] = defaultdict(list)
        self.faults: dict[tuple[str, int | None], deque[int | float]] = defaultdict(deque)
        self.blocked: set[int] = set()
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.rejected_pushes = 0
        self._updates: list[dict[str, Any]] = []
        self._confirmed = 0  # update ids up to this one are confirmed (getUpdates offset)
        self._update_ids = itertools.count(random.randint(1, 2**30))  # see updates._ids
        self._message_ids = itertools.count(1)
        self._topic_ids = itertools.count(501)
        self.topics: dict[int, tuple[int, str]] = {}  # topic id -> (chat id, name)
        self.alerts: list[str] = []  # texts of answerCallbackQuery(show_alert=True)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.base_url = ""

    # ---- server ----------------------------------------------------------------------------

    async def start(self) -> FakeBotAPI:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- what tests do ---------------------------------------------------------------------

    def fail(self, method: str, *faults: int | float, chat_id: int | None = None) -> None:
        """The next calls of `method` (to `chat_id`, if given) answer these HTTP statuses; a
        float is a hang of that many seconds, recorded as 408 (longer than the bot's request
        timeout: the bot times out, nothing is sent)."""
        self.faults[(method, chat_id)].extend(faults)

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    async def push(self, update: dict[str, Any]) -> int:
        update = dict(update, update_id=next(self._update_ids))
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return int(update["update_id"])

    async def redeliver(self, update_id: int) -> None:
        """As Telegram does when the bot did not confirm an update (it crashed first, or the
        webhook timed out): that update and every later one are delivered again."""
        async with self._changed:
            self._confirmed = min(self._confirmed, update_id - 1)
            self._changed.notify_all()

    def user(self, user_id: int, lang: str = "en") -> FakeUser:
        return FakeUser(self, user_id, lang)

    def sent_to(self, chat_id: int) -> list[Sent]:
        return list(self._by_chat.get(chat_id, ()))

    def in_topic(self, chat_id: int, topic_id: int) -> list[Sent]:
        return [m for m in self._by_chat.get(chat_id, ()) if m.thread_id == topic_id]

    def member(self, user_id: int, chat_id: int, lang: str = "en") -> FakeMember:
        return FakeMember(self, user_id, chat_id, lang)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, condition: Callable[[], bool], within: float = 15.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), within)

    # ---- the Bot API -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        call = Call(method, params, time.monotonic())
        chat = params.get("chat_id")
        queue = self.faults.get((method, int(chat) if chat else None)) or self.faults.get((method, None))
        fault = queue.popleft() if queue else None
        if isinstance(fault, float):  # a request that hangs: the bot gives up first
            call.status = 408
            await self._record(call)
            await asyncio.sleep(fault)
            return _error(504, "Gateway Timeout")
        if method == "sendMessage" and int(params.get("chat_id", 0)) in self.blocked:
            fault = 403
        if fault is not None:
            call.status = int(fault)
            await self._record(call)
            return _error(int(fault), _DESCRIPTIONS[int(fault)], retry_after=1 if fault == 429 else None)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            call.status = 404
            await self._record(call)
            return _error(404, "Not Found: method not found")
        if method == "getUpdates":
            await self._record(call)
            return await handler(params)  # type: ignore[no-any-return]
        response: web.Response = await handler(params)
        call.status = response.status
        await self._record(call)
        return response

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _api_getMe(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        return _ok({"id": self.bot_id, "is_bot": True, "first_name": "wenzhen", "username": "wenzhen_bot"})

    async def _api_getUpdates(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        if self.webhook_url:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset", 0) or 0)
        wait = float(params.get("timeout", 0) or 0)
        if offset:
            self._confirmed = max(self._confirmed, offset - 1)
        async with self._changed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._pending())), wait)
            return _ok(self._pending()[:100])

    def _pending(self) -> list[dict[str, Any]]:
        return [u for u in self._updates if u["update_id"] > self._confirmed]

    async def _api_sendMessage(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        text = str(params.get("text", ""))
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        return await self._deliver(params, text)

    async def _deliver(
        self, params: dict[str, Any], text: str, copied_from: int | None = None
    ) -> web.Response:
        chat_id = int(params["chat_id"])
        thread = params.get("message_thread_id")
        if thread is not None and int(thread) not in self.topics:
            return _error(400, "Bad Request: message thread not found")
        markup = params.get("reply_markup") or {}
        rows = [
            [(str(b["text"]), str(b.get("callback_data", ""))) for b in row]
            for row in markup.get("inline_keyboard", [])
        ]
        sent = Sent(
            next(self._message_ids),
            chat_id,
            text,
            rows,
            time.monotonic(),
            thread_id=int(thread) if thread is not None else None,
            copied_from=copied_from,
        )
        async with self._changed:
            self.messages.append(sent)
            self._by_chat[chat_id].append(sent)
            self._changed.notify_all()
        body: dict[str, Any] = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "wenzhen"},
            "text": text,
        }
        if markup:
            body["reply_markup"] = markup
        return _ok(body)

    async def _api_createForumTopic(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        topic_id = next(self._topic_ids)
        name = str(params.get("name", ""))
        if not 1 <= len(name) <= 128:
            return _error(400, "Bad Request: TOPIC_NAME_INVALID")
        self.topics[topic_id] = (int(params["chat_id"]), name)
        return _ok({"message_thread_id": topic_id, "name": name, "icon_color": 7322096})

    async def _api_copyMessage(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        response = await self._deliver(
            params, str(params.get("caption") or "[copy]"), copied_from=int(params["message_id"])
        )
        if response.status != 200:
            return response
        return _ok({"message_id": self.messages[-1].message_id})

    async def _api_editMessageText(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        message_id = int(params.get("message_id", 0))
        shown = next((m for m in self.messages if m.message_id == message_id), None)
        if shown is None:
            return _error(400, _DESCRIPTIONS[400])
        text = str(params.get("text", ""))
        if text == shown.text:
            return _error(400, "Bad Request: message is not modified")
        markup = params.get("reply_markup") or {}
        async with self._changed:
            shown.text = text
            shown.buttons = [
                [(str(b["text"]), str(b.get("callback_data", ""))) for b in row]
                for row in markup.get("inline_keyboard", [])
            ]
            self._changed.notify_all()
        return _ok(True)

    async def _api_sendChatAction(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        return _ok(True)

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        if params.get("show_alert") in (True, "true", "True") and params.get("text"):
            async with self._changed:
                self.alerts.append(str(params["text"]))
                self._changed.notify_all()
        return _ok(True)

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        message_id = int(params.get("message_id", 0))
        shown = next((m for m in self.messages if m.message_id == message_id), None)
        if shown is None:
            return _error(400, _DESCRIPTIONS[400])
        shown.buttons = []
        return _ok(True)

    async def _api_setMyCommands(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        return _ok(True)

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        self.webhook_url = self.webhook_secret = None
        return _ok(True)

    async def _api_setWebhook(self, params: dict[str, Any]) -> web.Response:  # noqa: N802
        self.webhook_url = str(params["url"])
        self.webhook_secret = params.get("secret_token")
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_to_webhook())
        return _ok(True)

    async def _push_to_webhook(self) -> None:
        """Like Telegram: each update in order, retried until the webhook answers 200."""
        async with aiohttp.ClientSession() as client:
            while self.webhook_url:
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self._pending()) or not self.webhook_url)
                    pending = self._pending()
                if not pending or not self.webhook_url:
                    continue
                update = pending[0]
                headers = {SECRET_HEADER: self.webhook_secret} if self.webhook_secret else {}
                try:
                    async with client.post(
                        self.webhook_url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
                    ) as response:
                        accepted = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    accepted = False
                if accepted:
                    self._confirmed = max(self._confirmed, int(update["update_id"]))
                else:
                    self.rejected_pushes += 1
                    await asyncio.sleep(0.1)


@dataclass
class FakeUser:
    """A patient in a private chat with the bot."""

    api: FakeBotAPI
    user_id: int
    lang: str = "en"
    seen: int = field(default=0)

    async def say(self, text: str, until: Callable[[Sent], bool], within: float = 15.0) -> list[Sent]:
        return await self._turn(updates.message(self.user_id, text, lang=self.lang), until, within)

    async def command(self, name: str, until: Callable[[Sent], bool], within: float = 15.0) -> list[Sent]:
        return await self.say(f"/{name}", until, within)

    async def tap(self, data: str, until: Callable[[Sent], bool], within: float = 15.0) -> list[Sent]:
        shown = next((m for m in reversed(self.api.sent_to(self.user_id)) if data in m.data), None)
        assert shown is not None, f"no message of the bot offers {data!r}"
        update = updates.tap(
            self.user_id, data, message_id=shown.message_id, lang=self.lang, keyboard=shown.markup()
        )
        update["callback_query"]["message"]["from"]["id"] = self.api.bot_id
        return await self._turn(update, until, within)

    async def send(self, update: dict[str, Any]) -> None:
        await self.api.push(update)

    async def _turn(self, update: dict[str, Any], until: Callable[[Sent], bool], within: float) -> list[Sent]:
        start = len(self.api.sent_to(self.user_id))
        await self.api.push(update)
        mine = self.api._by_chat[self.user_id]

        def done() -> bool:
            return any(until(m) for m in mine[start:])

        try:
            await self.api.wait_for(done, within)
        except TimeoutError:
            got = [m.text[:80] for m in self.api.sent_to(self.user_id)[start:]]
            raise AssertionError(
                f"user {self.user_id}: no matching reply within {within}s; got {got}"
            ) from None
        replies = self.api.sent_to(self.user_id)[start:]
        end = next(i for i, m in enumerate(replies) if until(m))
        return replies[: end + 1]


@dataclass
class FakeMember:
    """A member of a team's forum supergroup."""

    api: FakeBotAPI
    user_id: int
    chat_id: int
    lang: str = "en"

    async def tap(self, data: str) -> None:
        shown = next((m for m in reversed(self.api.sent_to(self.chat_id)) if data in m.data), None)
        assert shown is not None, f"no message in the group offers {data!r}"
        update = updates.tap(
            self.user_id,
            data,
            message_id=shown.message_id,
            lang=self.lang,
            chat_type="supergroup",
            chat_id=self.chat_id,
            keyboard=shown.markup(),
        )
        update["callback_query"]["message"]["from"]["id"] = self.api.bot_id
        if shown.thread_id is not None:
            update["callback_query"]["message"].update(
                message_thread_id=shown.thread_id, is_topic_message=True
            )
        await self.api.push(update)

    async def say(self, topic_id: int, text: str) -> None:
        await self.api.push(
            updates.message(
                self.user_id,
                text,
                lang=self.lang,
                chat_type="supergroup",
                chat_id=self.chat_id,
                extra={"message_thread_id": topic_id, "is_topic_message": True},
            )
        )


def offers(data: str) -> Callable[[Sent], bool]:
    """The bot message offers this button."""
    return lambda message: data in message.data


def says(fragment: str) -> Callable[[Sent], bool]:
    return lambda message: fragment in message.text


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        raw: dict[str, Any] = await request.json()
    else:
        raw = dict(await request.post())
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, *, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
