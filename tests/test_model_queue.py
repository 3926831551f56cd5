"""The generation queue over the fake backend: priorities, deadlines, cancellation,
back-pressure, the circuit breaker and the worker pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from model import (
    HANG,
    Backend,
    BackendError,
    ChatMessage,
    CircuitBreaker,
    FakeBackend,
    GenerationOptions,
    GenerationQueue,
    GenerationResult,
    Outcome,
    Priority,
    QueueFullError,
)

OPTIONS = GenerationOptions(max_tokens=8)
MESSAGES = [ChatMessage(role="user", content="hi")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(started: list[str], name: str) -> Callable[[Backend], Coroutine[Any, Any, str | None]]:
    async def run(backend: Backend) -> str | None:
        started.append(name)
        return await backend.complete([ChatMessage(role="user", content=name)], OPTIONS)

    return run


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(default="ok")


@pytest.fixture
async def queue(fake: FakeBackend) -> AsyncIterator[GenerationQueue]:
    async with GenerationQueue(fake, max_pending=8) as q:
        yield q


async def test_a_job_runs_and_its_value_comes_back(queue: GenerationQueue, fake: FakeBackend) -> None:
    fake.enqueue(["Hello there."])
    result = await queue.submit(job([], "a"), deadline_s=1.0)
    assert result.outcome is Outcome.OK
    assert result.ok
    assert result.value == "Hello there."
    assert result.value_or("template") == "Hello there."
    assert fake.prompts == ["a"]
    assert queue.stats[Outcome.OK] == 1


async def test_patient_jobs_run_before_doctor_jobs_and_fifo_within_a_priority(
    queue: GenerationQueue, fake: FakeBackend
) -> None:
    started: list[str] = []
    fake.enqueue([HANG, "first"])
    blocker = asyncio.create_task(queue.submit(job(started, "blocker"), deadline_s=5))
    await until(lambda: fake.active == 1)
    waiting = [
        asyncio.create_task(queue.submit(job(started, name), deadline_s=5, priority=priority))
        for name, priority in [
            ("summary-1", Priority.DOCTOR),
            ("background", Priority.BACKGROUND),
            ("patient-1", Priority.PATIENT),
            ("summary-2", Priority.DOCTOR),
        ]
    ]
    await until(lambda: queue.pending == 4)
    extra = asyncio.create_task(queue.submit(job(started, "patient-2"), deadline_s=5))
    await asyncio.sleep(0)
    fake.release()
    results = await asyncio.gather(blocker, *waiting, extra)
    assert all(r.ok for r in results)
    assert started == ["blocker", "patient-1", "patient-2", "summary-1", "summary-2", "background"]


async def test_deadline_while_waiting_answers_at_the_deadline_and_never_runs(
    queue: GenerationQueue, fake: FakeBackend
) -> None:
    started: list[str] = []
    fake.enqueue([HANG])
    blocker = asyncio.create_task(queue.submit(job(started, "blocker"), deadline_s=5))
    await until(lambda: fake.active == 1)
    t0 = time.monotonic()
    result = await queue.submit(job(started, "late"), deadline_s=0.05)
    elapsed = time.monotonic() - t0
    assert result.outcome is Outcome.TIMEOUT
    assert 0.04 <= elapsed < 0.5
    assert result.value is None
    assert result.value_or("template") == "template"
    fake.release()
    assert (await blocker).ok
    await asyncio.sleep(0.01)
    assert started == ["blocker"]


async def test_deadline_while_generating_cancels_the_generation(
    queue: GenerationQueue, fake: FakeBackend
) -> None:
    fake.enqueue([HANG])
    t0 = time.monotonic()
    result = await queue.submit(job([], "slow"), deadline_s=0.05)
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - t0 < 0.5
    await until(lambda: fake.cancelled == 1)
    assert fake.active == 0
    assert result.ran_s > 0


async def test_cancel_by_key_reaches_waiting_and_running_jobs_only_of_that_key(
    queue: GenerationQueue, fake: FakeBackend
) -> None:
    fake.enqueue([HANG])
    running = asyncio.create_task(queue.submit(job([], "p1-running"), deadline_s=5, key="p1"))
    await until(lambda: fake.active == 1)
    waiting = asyncio.create_task(queue.submit(job([], "p1-waiting"), deadline_s=5, key="p1"))
    other = asyncio.create_task(queue.submit(job([], "p2"), deadline_s=5, key="p2"))
    await until(lambda: queue.pending == 2)
    assert queue.cancel("p1") == 2
    assert (await running).outcome is Outcome.CANCELLED
    assert (await waiting).outcome is Outcome.CANCELLED
    fake.release()
    assert (await other).value == "ok"
    assert fake.prompts == ["p1-running", "p2"]
    assert fake.cancelled == 1
    assert queue.cancel("p1") == 0


async def test_a_cancelled_caller_cancels_its_generation(queue: GenerationQueue, fake: FakeBackend) -> None:
    fake.enqueue([HANG])
    caller = asyncio.create_task(queue.submit(job([], "a"), deadline_s=5))
    await until(lambda: fake.active == 1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await until(lambda: fake.cancelled == 1)
    assert queue.stats[Outcome.CANCELLED] == 1


async def test_a_full_queue_rejects_at_once(fake: FakeBackend) -> None:
    async with GenerationQueue(fake, max_pending=2) as queue:
        fake.enqueue([HANG])
        tasks = [asyncio.create_task(queue.submit(job([], "busy"), deadline_s=5))]
        await until(lambda: fake.active == 1)
        tasks += [asyncio.create_task(queue.submit(job([], f"w{i}"), deadline_s=5)) for i in range(2)]
        await until(lambda: queue.pending == 2)
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match="full"):
            await queue.submit(job([], "one too many"), deadline_s=5)
        with pytest.raises(QueueFullError):
            await queue.submit(job([], "less urgent"), deadline_s=5, priority=Priority.DOCTOR)
        assert time.monotonic() - t0 < 0.05
        fake.release()
        assert all(r.ok for r in await asyncio.gather(*tasks))
        assert "one too many" not in fake.prompts


async def test_a_full_queue_sheds_a_less_urgent_request_for_a_patient(fake: FakeBackend) -> None:
    async with GenerationQueue(fake, max_pending=2) as queue:
        fake.enqueue([HANG])
        busy = asyncio.create_task(queue.submit(job([], "busy"), deadline_s=5))
        await until(lambda: fake.active == 1)
        old_summary = asyncio.create_task(queue.submit(job([], "s1"), deadline_s=5, priority=Priority.DOCTOR))
        new_summary = asyncio.create_task(queue.submit(job([], "s2"), deadline_s=5, priority=Priority.DOCTOR))
        await until(lambda: queue.pending == 2)
        patient = asyncio.create_task(queue.submit(job([], "patient"), deadline_s=5))
        shed = await new_summary
        assert shed.outcome is Outcome.REJECTED
        fake.release()
        assert (await patient).ok
        assert (await old_summary).ok
        assert (await busy).ok
        assert fake.prompts == ["busy", "patient", "s1"]


async def test_errors_and_declines_are_results_not_exceptions(
    queue: GenerationQueue, fake: FakeBackend
) -> None:
    fake.enqueue([BackendError("server replied 500: boom")])
    failed = await queue.submit(job([], "a"), deadline_s=1)
    assert failed.outcome is Outcome.ERROR
    assert failed.error is not None
    assert "boom" in failed.error

    async def declines(backend: Backend) -> str | None:
        return None

    declined = await queue.submit(declines, deadline_s=1)
    assert declined.outcome is Outcome.DECLINED
    assert declined.value is None
    assert (await queue.submit(job([], "b"), deadline_s=0)).outcome is Outcome.TIMEOUT


async def test_the_circuit_opens_after_repeated_failures_and_recovers_after_a_trial(
    fake: FakeBackend,
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown=30, clock=clock)
    async with GenerationQueue(fake, breaker=breaker) as queue:
        fake.enqueue([BackendError("down"), BackendError("down")])
        for _ in range(2):
            assert (await queue.submit(job([], "x"), deadline_s=1)).outcome is Outcome.ERROR
        assert state(breaker) == "open"
        calls = len(fake.calls)
        t0 = time.monotonic()
        refused = await queue.submit(job([], "x"), deadline_s=1)
        assert refused.outcome is Outcome.UNAVAILABLE
        assert time.monotonic() - t0 < 0.05
        assert len(fake.calls) == calls
        clock.now += 31
        assert state(breaker) == "half_open"
        fake.enqueue([BackendError("still down")])
        assert (await queue.submit(job([], "trial"), deadline_s=1)).outcome is Outcome.ERROR
        assert state(breaker) == "open"
        clock.now += 31
        assert (await queue.submit(job([], "trial 2"), deadline_s=1)).ok
        assert state(breaker) == "closed"


async def test_timeouts_of_running_generations_count_as_failures(fake: FakeBackend) -> None:
    breaker = CircuitBreaker(failures=2, cooldown=30)
    async with GenerationQueue(fake, breaker=breaker) as queue:
        fake.enqueue([HANG, HANG])
        for _ in range(2):
            assert (await queue.submit(job([], "slow"), deadline_s=0.02)).outcome is Outcome.TIMEOUT
        await until(lambda: fake.active == 0)
        assert state(breaker) == "open"


def test_the_breaker_allows_one_trial_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=10, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.available()
    assert not breaker.allow()
    clock.now += 10
    assert breaker.available()
    assert breaker.allow()
    assert not breaker.allow()  # the trial is taken
    breaker.record_neutral()  # the trial was cancelled: someone else may try
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.allow()
    assert breaker.allow()
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(failures=0)


async def test_a_pool_of_workers_runs_generations_in_parallel(fake: FakeBackend) -> None:
    async with GenerationQueue(fake, workers=2) as queue:
        fake.enqueue([HANG, "a", HANG, "b"])
        tasks = [asyncio.create_task(queue.submit(job([], n), deadline_s=5)) for n in ("1", "2")]
        await until(lambda: fake.active == 2)
        assert queue.running == 2
        fake.release()
        assert sorted(r.value or "" for r in await asyncio.gather(*tasks)) == ["a", "b"]
        assert fake.max_active == 2


async def test_the_loop_stays_responsive_while_generations_wait(fake: FakeBackend) -> None:
    fake.delay = 0.02
    async with GenerationQueue(fake, max_pending=16) as queue:
        tasks = [asyncio.create_task(queue.submit(job([], str(i)), deadline_s=5)) for i in range(8)]
        await until(lambda: fake.active == 1)
        t0 = time.monotonic()
        await asyncio.sleep(0)  # what an emergency reply needs: the loop, not the queue
        assert time.monotonic() - t0 < 0.01
        assert queue.pending == 7
        assert all(r.ok for r in await asyncio.gather(*tasks))


async def test_closing_answers_everyone_and_refuses_new_work(fake: FakeBackend) -> None:
    queue = GenerationQueue(fake)
    fake.enqueue([HANG])
    running = asyncio.create_task(queue.submit(job([], "a"), deadline_s=5))
    await until(lambda: fake.active == 1)
    waiting = asyncio.create_task(queue.submit(job([], "b"), deadline_s=5))
    await until(lambda: queue.pending == 1)
    await queue.aclose()
    assert (await running).outcome is Outcome.UNAVAILABLE
    assert (await waiting).outcome is Outcome.UNAVAILABLE
    assert (await queue.submit(job([], "c"), deadline_s=5)).outcome is Outcome.UNAVAILABLE
    assert fake.prompts == ["a"]


def test_result_helpers() -> None:
    assert GenerationResult(Outcome.OK, value="x").value_or("t") == "x"
    assert GenerationResult[str](Outcome.OK, value=None).value_or("t") == "t"
    assert GenerationResult(Outcome.TIMEOUT, value="stale").value_or("t") == "t"
    with pytest.raises(ValueError, match="at least 1"):
        GenerationQueue(FakeBackend(), max_pending=0)


async def test_the_fake_backend_records_streams_and_fails_on_demand() -> None:
    fake = FakeBackend(["Hello world", RuntimeError("boom")], chunk_size=3)
    chunks = [chunk async for chunk in fake.stream(MESSAGES, OPTIONS, {"type": "object"})]
    assert chunks == ["Hel", "lo ", "wor", "ld"]
    assert fake.calls[0].streamed
    assert fake.calls[0].json_schema == {"type": "object"}
    with pytest.raises(RuntimeError, match="boom"):
        await fake.complete(MESSAGES, OPTIONS)
    with pytest.raises(BackendError, match="no reply queued"):
        await fake.complete(MESSAGES, OPTIONS)
    await fake.aclose()
    with pytest.raises(BackendError, match="closed"):
        await fake.complete(MESSAGES, OPTIONS)
