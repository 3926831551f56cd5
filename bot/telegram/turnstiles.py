"""One at a time per key, in order of arrival, in this process: asyncio locks made on demand and
dropped as soon as nobody holds or waits for them (a long-running bot sees millions of patients)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Turnstile:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Turnstiles(Generic[K]):
    def __init__(self) -> None:
        self._held: dict[K, _Turnstile] = {}

    def __len__(self) -> int:
        return len(self._held)

    @asynccontextmanager
    async def one_at_a_time(self, key: K) -> AsyncIterator[None]:
        turnstile = self._held.setdefault(key, _Turnstile())
        turnstile.users += 1
        try:
            async with turnstile.lock:  # asyncio.Lock wakes its waiters in arrival order
                yield
        finally:
            turnstile.users -= 1
            if turnstile.users == 0:
                del self._held[key]
