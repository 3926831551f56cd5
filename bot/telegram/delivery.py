"""Sending what the consultation service returns, with Telegram's faults handled.

- 429 Too Many Requests: wait the `retry_after` Telegram asks for, then retry.
- 5xx, network errors, timeouts and unreadable answers (a proxy's HTML error page): retry with
  exponential backoff (aiogram's `Backoff`).
- Urgent replies (emergency and crisis) are retried until Telegram accepts them, for up to
  `urgent_for` seconds; other replies a few times.
- 403 Forbidden (the patient blocked the bot or deleted the account): stop quietly.
- Anything else (a 400): logged without the text, and the next message is still tried.
- An escalation the team's board cannot take now (Redis down) is retried in the background with
  backoff for `ESCALATION_RETRY_FOR`, so an emergency during an outage still reaches the team.

The typing indicator is shown only when the service takes longer than `typing_after`: a fast
reply needs none, and it costs an API call against Telegram's rate limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.backoff import Backoff, BackoffConfig
from redis.exceptions import RedisError

from bot.telegram.escalations import EscalationSink, LogEscalations
from bot.telegram.render import keyboard, split_text
from dialog.events import Escalation, Outbound, Reply
from dialog.store import StoreUnavailableError

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

TYPING_REFRESH = 4.5  # Telegram shows "typing…" for 5 seconds
ESCALATION_RETRY_FOR = 3600.0  # seconds a flagged case the team could not be given is retried
# faults that pass: the team's board (Redis) or Telegram is briefly unreachable
_LATER = (StoreUnavailableError, RedisError, OSError, TelegramNetworkError, TelegramServerError)


class PatientUnreachableError(Exception):
    """Telegram answered 403: the patient blocked the bot or deleted the account."""


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 4  # tries for an ordinary reply
    urgent_for: float = 600.0  # seconds an urgent reply keeps being retried
    backoff: BackoffConfig = field(
        default_factory=lambda: BackoffConfig(min_delay=0.5, max_delay=15.0, factor=2.0, jitter=0.1)
    )
    typing_after: float = 0.5


class Delivery:
    def __init__(
        self, policy: DeliveryPolicy | None = None, escalations: EscalationSink | None = None
    ) -> None:
        self.policy = policy or DeliveryPolicy()
        self.escalations: EscalationSink = escalations or LogEscalations()
        self._later: set[asyncio.Task[None]] = set()  # escalations waiting for storage to return
        self.metrics: Metrics | None = None  # set by the runner (bot/telegram/health.py)

    async def send(
        self,
        bot: Bot,
        chat_id: int,
        actions: Sequence[Outbound],
        on_unreachable: Callable[[], Awaitable[None]] | None = None,
        *,
        message_id: int | None = None,
    ) -> int | None:
        """The replies in order, and at the same time the team's part (escalations, messages for
        a doctor who has the case): the patient's emergency reply never waits for the team's
        Telegram calls, nor the team for a reply being retried. Returns the id of the last
        message sent with a keyboard, if the last reply had one. `on_unreachable` runs when
        Telegram says the patient blocked the bot; `message_id` is the patient's message this
        answers."""
        if self.metrics is not None:
            self.metrics.observe_actions(actions)
        latest, _ = await asyncio.gather(
            self._send_replies(bot, chat_id, actions, on_unreachable),
            self._tell_team(bot, chat_id, actions, message_id),
        )
        return latest

    async def _send_replies(
        self,
        bot: Bot,
        chat_id: int,
        actions: Sequence[Outbound],
        on_unreachable: Callable[[], Awaitable[None]] | None,
    ) -> int | None:
        latest: int | None = None
        try:
            for action in actions:
                if isinstance(action, Reply):
                    sent = await self.send_reply(bot, chat_id, action)
                    latest = sent[-1] if action.buttons and sent else None
        except PatientUnreachableError:
            log.info("chat %s: the patient blocked the bot; not sending", chat_id)
            if on_unreachable is not None:
                await on_unreachable()
            return None
        return latest

    async def _tell_team(
        self, bot: Bot, chat_id: int, actions: Sequence[Outbound], message_id: int | None
    ) -> None:
        for action in actions:
            if isinstance(action, Reply):
                continue
            try:
                if isinstance(action, Escalation):
                    await self.escalations.publish(action)
                else:
                    await self.escalations.relay(bot, action, chat_id, message_id)
            except _LATER as exc:
                if isinstance(action, Escalation):  # e.g. Redis is down: the team hears of it later
                    self._publish_later(action, exc)
                else:
                    log.warning("case %s: a message for the doctor was lost (%s)", action.case_id, _name(exc))
            except Exception:
                log.exception("case %s could not be passed to the team", action.case_id)

    async def send_reply(self, bot: Bot, chat_id: int, reply: Reply) -> list[int]:
        """The ids of the messages sent (one per part of a long text). Raises
        PatientUnreachableError."""
        chunks = split_text(reply.text)
        markup = keyboard(reply.buttons)
        sent: list[int] = []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            message_id = await self.send_text(
                bot, chat_id, chunk, markup=markup if last else None, urgent=reply.urgent
            )
            if message_id is not None:
                sent.append(message_id)
        return sent

    async def send_text(
        self,
        bot: Bot,
        chat_id: int,
        text: str,
        *,
        markup: InlineKeyboardMarkup | None = None,
        urgent: bool = False,
    ) -> int | None:
        """Send one message (at most 4096 characters), retrying as the policy says: its id, or
        None when it was given up. Raises PatientUnreachableError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.urgent_for
        backoff = Backoff(self.policy.backoff)
        attempt = 0
        while True:
            attempt += 1
            try:
                message = await bot.send_message(chat_id=chat_id, text=text, reply_markup=markup)
                return message.message_id
            except TelegramForbiddenError as exc:
                self._count(exc)
                raise PatientUnreachableError(chat_id) from exc
            except TelegramRetryAfter as exc:
                self._count(exc)
                delay = float(exc.retry_after)
                why = f"429, retry after {exc.retry_after}s"
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as exc:
                self._count(exc)
                delay = max(0.0, next(backoff))
                why = type(exc).__name__
            except TelegramAPIError as exc:
                self._count(exc)
                log.error("chat %s: Telegram refused a message: %s", chat_id, exc.message)
                return None
            out_of_time = loop.time() + delay > deadline
            if (urgent and out_of_time) or (not urgent and attempt >= self.policy.attempts):
                log.error(
                    "chat %s: %s message not delivered after %d attempts (%s)",
                    chat_id,
                    "URGENT" if urgent else "a",
                    attempt,
                    why,
                )
                return None
            log.warning("chat %s: attempt %d failed (%s); retrying in %.1fs", chat_id, attempt, why, delay)
            if self.metrics is not None:
                self.metrics.telegram_retry()
            await asyncio.sleep(delay)

    def _publish_later(self, escalation: Escalation, exc: BaseException) -> None:
        """Keep trying to give the team a flagged case (in this process) for ESCALATION_RETRY_FOR."""
        log.warning("case %s: not passed to the team yet (%s); retrying", escalation.case_id, _name(exc))
        task = asyncio.create_task(self._retry_publish(escalation))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _retry_publish(self, escalation: Escalation) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ESCALATION_RETRY_FOR
        backoff = Backoff(self.policy.backoff)
        while loop.time() < deadline:
            await asyncio.sleep(max(0.0, next(backoff)))
            try:
                await self.escalations.publish(escalation)
            except _LATER:
                continue
            except Exception:
                log.exception("case %s could not be passed to the team", escalation.case_id)
                return
            log.info("case %s passed to the team after a delay", escalation.case_id)
            return
        log.error("case %s: never reached the team (given up)", escalation.case_id)

    def _count(self, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.telegram_error(exc)

    @asynccontextmanager
    async def typing(self, bot: Bot, chat_id: int) -> AsyncIterator[None]:
        """Show "typing…" while the body runs, once it has taken `typing_after` seconds."""
        task = asyncio.create_task(self._keep_typing(bot, chat_id))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _keep_typing(self, bot: Bot, chat_id: int) -> None:
        await asyncio.sleep(self.policy.typing_after)
        while True:
            try:
                await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            except TelegramAPIError as exc:
                log.debug("chat %s: typing indicator failed: %s", chat_id, exc)
            await asyncio.sleep(TYPING_REFRESH)


def _name(exc: BaseException) -> str:
    return type(exc).__name__
