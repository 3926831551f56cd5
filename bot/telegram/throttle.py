"""Flood control: a token bucket per patient, in this process.

A message over the limit is not consulted on, but it still goes through the service's safety
screen (`screen_only`), so an emergency in a flood is answered; the patient is asked to slow
down once per burst. Quick-reply taps are not throttled: each answers a question the bot asked,
and a "yes" to a red-flag question must never be dropped (`screen_only` reads text only).

With several bot processes each keeps its own buckets; Telegram's own client limits and the
per-patient event lock bound what gets through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Message, TelegramObject, Update

from bot.telegram.delivery import Delivery, PatientUnreachableError
from bot.telegram.inbound import message_inbound
from bot.telegram.texts import Texts, language_of
from dialog.service import ConsultationService

_PRUNE_EVERY = 1024


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    warned: bool = False


class TokenBuckets:
    """`rate` messages per second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._takes = 0

    def take(self, key: int) -> bool:
        """True if `key` may go on now (a token is spent)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, stamp=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._takes += 1
        if self._takes % _PRUNE_EVERY == 0:
            self._prune(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.warned = False
            return True
        return False

    def warn_once(self, key: int) -> bool:
        """True the first time a burst is throttled (the patient is told once, not each time)."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.warned:
            return False
        bucket.warned = True
        return True

    def _prune(self, now: float) -> None:
        """Forget patients whose bucket has refilled: they are as good as new."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.stamp) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class ThrottleMiddleware(BaseMiddleware):
    """Inner middleware of the patient router's messages."""

    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Message) or event.from_user is None:
            return await handler(event, data)
        user = event.from_user.id
        if self.buckets.take(user):
            return await handler(event, data)
        update: Update | None = data.get("event_update")
        inbound = message_inbound(event, update.update_id if update else None)
        if inbound is None:
            return None
        service: ConsultationService = data["service"]
        delivery: Delivery = data["delivery"]
        bot: Bot = data["bot"]
        actions = await service.screen_only(inbound)
        if actions:
            await delivery.send(bot, event.chat.id, actions)
        elif self.buckets.warn_once(user):
            texts: Texts = data["texts"]
            lang = language_of(inbound.lang_hint, service.default_lang)
            with suppress(PatientUnreachableError):
                await delivery.send_text(bot, event.chat.id, texts.get("telegram.throttled", lang))
        return None
