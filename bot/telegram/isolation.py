"""aiogram's Redis FSM storage and event isolation, tuned for a consultation bot.

`PatientIsolation` is aiogram's `RedisEventIsolation` with three changes:
- events of one patient enter in the order they arrived in this process (a FIFO lock per patient
  before the Redis lock; Redis locks alone let waiters race, so fast taps could swap);
- the Redis lock's time-to-live is renewed every `timeout / 3` seconds while an event is being
  handled, so a slow model reply never loses the lock however long it takes, yet the lock of a
  crashed process frees its patient after `timeout` seconds (aiogram's default, a fixed 60 s,
  would be both too short for a slow reply and too long after a crash);
- when Redis is unreachable the event goes on without the cross-process lock (logged): safety
  replies must not wait for Redis.

`PatientStorage` is `RedisStorage` that reads and writes nothing rather than failing when Redis
is down, and leaves the shared client to its owner (`bot.app.open_redis`). The consultation
itself is kept by the consultation service's store, not in FSM data (the patient router keeps
only the id of the last keyboard it showed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiogram.fsm.storage.base import DefaultKeyBuilder, KeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from bot.telegram.renewal import Renewal
from bot.telegram.turnstiles import Turnstiles

log = logging.getLogger(__name__)

KEY_PREFIX = "wz:tg"
_DOWN = (RedisError, OSError)


def key_builder() -> KeyBuilder:
    return DefaultKeyBuilder(prefix=KEY_PREFIX, with_bot_id=True)


class PatientIsolation(RedisEventIsolation):
    def __init__(
        self,
        redis: Redis,
        key_builder: KeyBuilder | None = None,
        *,
        timeout: float = 30.0,
        poll: float = 0.02,
    ) -> None:
        super().__init__(redis, key_builder=key_builder, lock_kwargs={"timeout": timeout, "sleep": poll})
        self.timeout = timeout
        self.poll = poll
        self._local: Turnstiles[str] = Turnstiles()

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        name = self.key_builder.build(key, "lock")
        async with self._local.one_at_a_time(name):
            redis_lock = self.redis.lock(name, timeout=self.timeout, sleep=self.poll, lock_class=Lock)
            if not await _acquire(redis_lock):
                yield
                return
            renewal = Renewal(lambda: self._renew(redis_lock), self.timeout / 3)
            try:
                yield
            finally:
                await renewal.stop()
                with suppress(LockError, *_DOWN):
                    await redis_lock.release()

    async def _renew(self, redis_lock: Lock) -> bool:
        try:
            await redis_lock.reacquire()
        except LockError:
            log.warning("an event lock expired while its event was still being handled")
            return False
        except _DOWN as exc:
            log.warning("could not renew an event lock: %s", type(exc).__name__)
        return True


async def _acquire(redis_lock: Lock) -> bool:
    try:
        await redis_lock.acquire()
    except _DOWN as exc:
        log.warning("redis unavailable (%s): handling without the cross-process lock", type(exc).__name__)
        return False
    return True


class PatientStorage(RedisStorage):
    async def get_state(self, key: StorageKey) -> str | None:
        try:
            return await super().get_state(key)
        except _DOWN as exc:
            log.warning("redis unavailable (%s): no FSM state for this event", type(exc).__name__)
            return None

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        try:
            return await super().get_data(key)
        except _DOWN as exc:
            log.warning("redis unavailable (%s): no FSM data for this event", type(exc).__name__)
            return {}

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        try:
            await super().set_data(key, data)
        except _DOWN as exc:
            log.warning("redis unavailable (%s): FSM data not saved", type(exc).__name__)

    def create_isolation(self, **kwargs: Any) -> PatientIsolation:
        return PatientIsolation(self.redis, key_builder=self.key_builder, **kwargs)

    async def close(self) -> None:
        """The Redis client belongs to whoever opened it (`bot.app.open_redis`)."""
