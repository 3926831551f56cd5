"""A job repeated in the background until it is stopped: the renewal of a lock or a claim while an
update is being handled.

Stopping does not rely on cancellation alone. A cancellation that arrives while a Redis command
is timing out can come back as a TimeoutError (an OSError, which the job treats as "Redis is
down, try again"), and a job that loops on would then never end, and whoever waits for it would
wait for ever. So `stop()` first sets a flag the loop checks, then cancels, then waits a bounded
time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

log = logging.getLogger(__name__)

STOP_WAIT = 1.0  # seconds `stop()` waits for the job to end before leaving it behind


class Renewal:
    def __init__(self, job: Callable[[], Awaitable[bool]], every: float) -> None:
        """`job` returns False when there is nothing more to renew."""
        self._job = job
        self._every = every
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopped.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._every)
            if self._stopped.is_set() or not await self._job():
                return

    def cancel(self) -> None:
        """Stop without waiting (the caller itself is being cancelled)."""
        self._stopped.set()
        self._task.cancel()

    async def stop(self) -> None:
        self.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=STOP_WAIT)
        if not done:
            log.warning("a renewal did not end within %.1fs after being stopped", STOP_WAIT)
