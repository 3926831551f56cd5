"""The generation queue: the only way the consultation service reaches a backend.

- Bounded: at most `max_pending` requests wait. When full, a request more urgent than the least
  urgent waiting one takes its place (that one's caller gets `REJECTED`); otherwise `submit`
  raises `QueueFullError` at once. Nothing ever waits for room.
- Priorities: `PATIENT` (a patient is waiting: phrasing, reading an answer) before `DOCTOR`
  (summaries for the team) before `BACKGROUND`; first come, first served within a priority.
- A deadline per request, covering the wait and the generation: the caller gets `TIMEOUT` at the
  deadline, not later, and a generation still running is cancelled.
- Cancellation by key (e.g. the patient id, when the patient has moved on) or by cancelling the
  awaiting task.
- A circuit breaker: after `failures` consecutive errors or timeouts of running generations the
  backend is left alone for `cooldown` seconds (requests get `UNAVAILABLE` at once), then one
  trial request decides whether it is back.

`submit` returns a `GenerationResult`: the value when the outcome is `OK`, otherwise the reason
the caller falls back to its template. Workers are asyncio tasks (one by default, a small pool if
the backend serves requests in parallel); they only await, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Generic, Literal, TypeVar

from model.backend import Backend
from model.errors import QueueFullError

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Backend], Coroutine[Any, Any, T | None]]


class Priority(IntEnum):
    """Lower runs first."""

    PATIENT = 0
    DOCTOR = 1
    BACKGROUND = 2


class Outcome(StrEnum):
    OK = "ok"
    DECLINED = "declined"  # the job returned None: language not phrased well, output did not validate
    TIMEOUT = "timeout"  # the deadline passed (waiting or generating)
    CANCELLED = "cancelled"  # cancelled by key or by the caller
    REJECTED = "rejected"  # the queue was full (or the request was shed for a more urgent one)
    UNAVAILABLE = "unavailable"  # no backend, circuit open, or the queue closed
    ERROR = "error"  # the backend or the job raised


@dataclass(frozen=True)
class GenerationResult(Generic[T]):
    outcome: Outcome
    value: T | None = None
    error: str | None = None
    waited_s: float = 0.0
    ran_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def value_or(self, fallback: T) -> T:
        """The generated value when there is one, else `fallback` (the template)."""
        return self.value if self.outcome is Outcome.OK and self.value is not None else fallback


@dataclass(frozen=True)
class QueueStats:
    """A read-only view of the queue for monitoring (`GenerationQueue.snapshot`)."""

    pending: int  # requests waiting for a worker
    running: int
    oldest_wait_s: float  # how long the longest-waiting request has waited so far
    started: int  # requests a worker took up
    waited_s: float  # their total wait before that
    outcomes: dict[str, int]  # finished requests by outcome, and "full" refusals
    circuit: Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed -> (`failures` in a row) -> open -> (`cooldown` s) -> half open: one trial call."""

    def __init__(
        self, failures: int = 3, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown < 0:
            raise ValueError("failures must be >= 1 and cooldown >= 0")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def available(self) -> bool:
        """Whether a call could be allowed now (does not take the trial)."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._trial)

    def allow(self) -> bool:
        """Whether to call the backend now; in half-open state this takes the single trial."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial or self._consecutive >= self.failures:
            if self._opened_at is None or self._trial:
                log.warning(
                    "model circuit open for %.0f s after %d failures", self.cooldown, self._consecutive
                )
            self._opened_at = self._clock()
        self._trial = False

    def record_neutral(self) -> None:
        """A call ended without telling anything about the backend (cancelled by its caller)."""
        self._trial = False


class _Request:
    __slots__ = ("deadline", "future", "job", "key", "priority", "seq", "started", "submitted", "task")

    def __init__(
        self,
        job: Job[Any],
        priority: Priority,
        seq: int,
        key: str | None,
        submitted: float,
        deadline: float,
        future: asyncio.Future[GenerationResult[Any]],
    ) -> None:
        self.job = job
        self.priority = priority
        self.seq = seq
        self.key = key
        self.submitted = submitted
        self.deadline = deadline
        self.future = future
        self.started: float | None = None
        self.task: asyncio.Task[Any] | None = None


class GenerationQueue:
    """Serves one backend with `workers` concurrent generations (1 for an in-process model)."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_pending: int = 32,
        workers: int = 1,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if max_pending < 1 or workers < 1:
            raise ValueError("max_pending and workers must be at least 1")
        self.backend = backend
        self.max_pending = max_pending
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.stats: Counter[str] = Counter()
        self._size = workers
        self._heap: list[tuple[int, int, _Request]] = []
        self._waiting: set[_Request] = set()
        self._running: set[_Request] = set()
        self._seq = itertools.count()
        self._workers: list[asyncio.Task[None]] = []
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._started = 0
        self._waited_s = 0.0

    @property
    def pending(self) -> int:
        """Requests waiting for a worker."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def snapshot(self) -> QueueStats:
        """Depth, wait and outcomes so far (the event loop's clock is the monotonic one)."""
        now = time.monotonic()
        return QueueStats(
            pending=len(self._waiting),
            running=len(self._running),
            oldest_wait_s=max((now - r.submitted for r in self._waiting), default=0.0),
            started=self._started,
            waited_s=self._waited_s,
            outcomes={str(outcome): count for outcome, count in self.stats.items()},
            circuit=self.breaker.state,
        )

    async def submit(
        self,
        job: Job[T],
        *,
        deadline_s: float,
        priority: Priority = Priority.PATIENT,
        key: str | None = None,
    ) -> GenerationResult[T]:
        """Run `job(backend)`; the result comes within `deadline_s` seconds. Raises `QueueFullError` only."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._closed:
            return self._instant(Outcome.UNAVAILABLE, "the queue is closed")
        if deadline_s <= 0:
            return self._instant(Outcome.TIMEOUT, "no time left")
        if not self.breaker.available():
            return self._instant(Outcome.UNAVAILABLE, "circuit open: the backend failed repeatedly")
        request = _Request(job, priority, next(self._seq), key, now, now + deadline_s, loop.create_future())
        self._admit(request)
        self._start_workers()
        try:
            async with asyncio.timeout_at(request.deadline):
                result: GenerationResult[T] = await asyncio.shield(request.future)
                return result
        except TimeoutError:
            self._abort(request, Outcome.TIMEOUT, f"deadline of {deadline_s:g} s passed")
            return request.future.result()
        except asyncio.CancelledError:
            self._abort(request, Outcome.CANCELLED, "the caller was cancelled")
            raise

    def cancel(self, key: str) -> int:
        """Cancel every waiting or running request with this key; returns how many."""
        matched = [r for r in (*self._waiting, *self._running) if r.key == key and not r.future.done()]
        for request in matched:
            self._abort(request, Outcome.CANCELLED, "cancelled: the patient moved on")
        return len(matched)

    async def aclose(self) -> None:
        """Stop the workers; waiting and running requests end as `UNAVAILABLE`. The backend stays open."""
        self._closed = True
        for request in (*self._waiting, *self._running):
            self._abort(request, Outcome.UNAVAILABLE, "the queue is closed")
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def __aenter__(self) -> GenerationQueue:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ---- internals -------------------------------------------------------------------

    def _instant(self, outcome: Outcome, error: str) -> GenerationResult[Any]:
        self.stats[outcome] += 1
        return GenerationResult(outcome, error=error)

    def _admit(self, request: _Request) -> None:
        if len(self._waiting) >= self.max_pending:
            worst = max(self._waiting, key=lambda r: (r.priority, r.seq))
            if worst.priority <= request.priority:
                self.stats["full"] += 1
                raise QueueFullError(
                    f"generation queue full ({self.max_pending} waiting, {self.running} running)"
                )
            self._abort(worst, Outcome.REJECTED, "shed from a full queue for a more urgent request")
        self._waiting.add(request)
        heapq.heappush(self._heap, (request.priority, request.seq, request))
        if self._wakeup is not None:
            self._wakeup.set()

    def _start_workers(self) -> None:
        if self._workers:
            return
        self._wakeup = asyncio.Event()
        self._wakeup.set()
        self._workers = [
            asyncio.create_task(self._work(), name=f"generation-worker-{i}") for i in range(self._size)
        ]

    def _finish(
        self, request: _Request, outcome: Outcome, value: Any = None, error: str | None = None
    ) -> None:
        if request.future.done():
            return
        now = asyncio.get_running_loop().time()
        started = request.started if request.started is not None else now
        request.future.set_result(
            GenerationResult(
                outcome,
                value=value,
                error=error,
                waited_s=started - request.submitted,
                ran_s=now - started if request.started is not None else 0.0,
            )
        )
        self.stats[outcome] += 1

    def _abort(self, request: _Request, outcome: Outcome, error: str) -> None:
        self._waiting.discard(request)  # its heap entry is skipped by the workers
        self._finish(request, outcome, error=error)
        if request.task is not None and not request.task.done():
            request.task.cancel()

    async def _next(self) -> _Request:
        assert self._wakeup is not None
        while True:
            while self._heap:
                _, _, request = heapq.heappop(self._heap)
                if request in self._waiting:
                    self._waiting.discard(request)
                    return request
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            request = await self._next()
            if loop.time() >= request.deadline:
                self._finish(request, Outcome.TIMEOUT, error="deadline passed while waiting")
                continue
            if not self.breaker.allow():
                self._finish(
                    request, Outcome.UNAVAILABLE, error="circuit open: the backend failed repeatedly"
                )
                continue
            request.started = loop.time()
            self._started += 1
            self._waited_s += request.started - request.submitted
            request.task = asyncio.create_task(request.job(self.backend))
            self._running.add(request)
            try:
                await asyncio.wait({request.task})
            except asyncio.CancelledError:
                request.task.cancel()
                raise
            finally:
                self._running.discard(request)
            self._settle(request, request.task)

    def _settle(self, request: _Request, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            timed_out = request.future.done() and request.future.result().outcome is Outcome.TIMEOUT
            if timed_out:
                self.breaker.record_failure()
            else:
                self.breaker.record_neutral()
            self._finish(request, Outcome.CANCELLED, error="cancelled")
            return
        exc = task.exception()
        if exc is not None:
            self.breaker.record_failure()
            log.warning("generation failed: %s", type(exc).__name__)
            log.debug("generation failure detail", exc_info=exc)
            self._finish(request, Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
            return
        self.breaker.record_success()
        value = task.result()
        self._finish(request, Outcome.OK if value is not None else Outcome.DECLINED, value=value)
