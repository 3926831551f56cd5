"""Live updates: one reader of the board's event stream per dashboard process, fanned out to every
open page (server-sent events). Only case ids and kinds of change travel; never text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from storage.team_board import TeamBoard

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


@dataclass(frozen=True)
class Change:
    case_id: str
    kind: str


class LiveFeed:
    """Reads `{p}team:events` with short blocking reads (shorter than any socket timeout the Redis
    client may have) and hands each change to every subscriber's queue. A slow page that lets
    its queue fill up loses changes, not the feed: it refetches its list on the next one."""

    def __init__(self, board: TeamBoard, *, block_ms: int = 2000) -> None:
        self.board = board
        self.block_ms = block_ms
        self._subscribers: set[asyncio.Queue[Change | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    async def subscribe(self, *, ready_within: float = 5.0) -> asyncio.Queue[Change | None]:
        """A queue of changes from now on (None: the feed is closing)."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue(QUEUE_SIZE)
        if self._closed:
            queue.put_nowait(None)
            return queue
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._run(), name="dashboard-live-feed")
        self._subscribers.add(queue)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), ready_within)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        self._closed = True
        for queue in list(self._subscribers):
            _offer(queue, None)
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        last: str | None = None
        while not self._closed:
            try:
                if last is None:
                    last = await self.board.latest_event_id()
                    self._ready.set()
                last, changes = await self.board.events(last, block_ms=self.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or slow: keep trying, pages show stale data
                log.warning("live feed: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for case_id, kind in changes:
                change = Change(case_id, kind)
                for queue in list(self._subscribers):
                    _offer(queue, change)


def _offer(queue: asyncio.Queue[Change | None], item: Change | None) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)
