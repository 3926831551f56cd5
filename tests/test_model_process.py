"""The child-process llama.cpp backend with the real bundled SmolLM2-135M model (one process for
most of the module; generations kept short): text, streaming, JSON-schema constrained output,
cancellation across the pipe, a killed child, and no process left behind."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from model import (
    Backend,
    BackendError,
    BackendUnavailableError,
    ChatMessage,
    GenerationOptions,
    GenerationQueue,
    ModelConfigError,
    ProcessLlamaBackend,
    bundled_model_path,
)

GREETING = [
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Say hello to a patient in one short sentence."),
]
GREEDY = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
SHORT = GenerationOptions(max_tokens=2)
# Made-up words the model would never produce unless the grammar forces them.
ODD_SCHEMA = {
    "type": "object",
    "properties": {"pick": {"type": "string", "enum": ["zebra-7", "quokka-3"]}, "count": {"type": "integer"}},
    "required": ["pick", "count"],
    "additionalProperties": False,
}
# A grammar that cannot finish for hundreds of tokens: a generation that is not stopped runs long.
ENDLESS_SCHEMA = {"type": "array", "items": {"type": "integer"}, "minItems": 400}
NUMBERS = [ChatMessage(role="user", content="List numbers.")]


def _start(**kwargs: object) -> ProcessLlamaBackend:
    return ProcessLlamaBackend(
        bundled_model_path(),
        model_id="smollm2",
        languages={"en"},
        n_ctx=2048,
        n_threads=1,
        **kwargs,  # type: ignore[arg-type]
    )


def _gone(pid: int) -> bool:
    """No such process, not even a zombie (signal 0 reaches a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def child() -> Iterator[ProcessLlamaBackend]:
    backend = _start()
    yield backend
    backend.close()


async def test_complete_and_stream_give_the_same_greedy_text(child: ProcessLlamaBackend) -> None:
    assert isinstance(child, Backend)
    assert child.pid is not None
    assert child.pid != os.getpid()
    text = await child.complete(GREETING, GREEDY)
    chunks = [chunk async for chunk in child.stream(GREETING, GREEDY)]
    assert text.strip()
    assert len(chunks) > 1
    assert "".join(chunks) == text


async def test_json_schema_constrains_the_output(child: ProcessLlamaBackend) -> None:
    messages = [ChatMessage(role="user", content="What is the capital of France?")]
    for _ in range(2):  # the second call reuses the child's cached grammar
        reply = json.loads(await child.complete(messages, GenerationOptions(max_tokens=40), ODD_SCHEMA))
        assert set(reply) == {"pick", "count"}
        assert reply["pick"] in ("zebra-7", "quokka-3")
        assert isinstance(reply["count"], int)


async def test_errors_in_the_child_become_backend_errors(child: ProcessLlamaBackend) -> None:
    huge = [ChatMessage(role="user", content="word " * 5000)]  # far over n_ctx=2048
    with pytest.raises(BackendError, match="generation failed"):
        await child.complete(huge, GenerationOptions(max_tokens=4))
    with pytest.raises(BackendError, match="JSON schema"):
        await child.complete(GREETING, GREEDY, {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}})
    assert await child.complete(GREETING, SHORT) is not None  # the process serves on


async def test_cancelling_stops_the_generation_in_the_child(child: ProcessLlamaBackend) -> None:
    long_run = asyncio.create_task(
        child.complete(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
    )
    await asyncio.sleep(0.3)
    long_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_run
    t0 = time.monotonic()
    # Without the stop, this would queue behind ~1500 slow grammar tokens.
    await asyncio.wait_for(child.complete(GREETING, SHORT), timeout=20)
    assert time.monotonic() - t0 < 3.0


async def test_a_request_cancelled_before_it_started_is_skipped(child: ProcessLlamaBackend) -> None:
    first = asyncio.create_task(child.complete(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA))
    queued = asyncio.create_task(child.complete(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA))
    await asyncio.sleep(0.3)
    queued.cancel()
    first.cancel()
    for task in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    t0 = time.monotonic()
    await asyncio.wait_for(child.complete(GREETING, SHORT), timeout=20)
    assert time.monotonic() - t0 < 3.0


async def test_closing_a_stream_early_stops_the_generation(child: ProcessLlamaBackend) -> None:
    stream = child.stream(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
    received = []
    async for chunk in stream:
        received.append(chunk)
        if len(received) == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(received) == 3
    t0 = time.monotonic()
    await asyncio.wait_for(child.complete(GREETING, SHORT), timeout=20)
    assert time.monotonic() - t0 < 3.0


async def test_concurrent_requests_are_served_one_after_the_other(child: ProcessLlamaBackend) -> None:
    alone = await child.complete(GREETING, GREEDY)
    together = await asyncio.gather(*(child.complete(GREETING, GREEDY) for _ in range(3)))
    assert together == [alone] * 3


async def test_the_event_loop_keeps_ticking_while_queued_generations_run(child: ProcessLlamaBackend) -> None:
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def generate(backend: Backend) -> str:
        return await backend.complete(GREETING, GenerationOptions(max_tokens=24, temperature=0.0))

    beat = asyncio.create_task(heartbeat())
    t0 = time.monotonic()
    async with GenerationQueue(child) as queue:
        results = await asyncio.gather(*(queue.submit(generate, deadline_s=60) for _ in range(3)))
    took = time.monotonic() - t0
    beat.cancel()
    assert all(result.ok for result in results)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert took > 0.05, "the generation was too short to prove anything"
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"


async def test_a_killed_child_fails_its_requests_and_is_replaced() -> None:
    backend = await asyncio.to_thread(_start)
    try:
        first = backend.pid
        assert first is not None
        running = asyncio.create_task(
            backend.complete(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
        )
        await asyncio.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(BackendUnavailableError, match="exited with code -9"):
            await asyncio.wait_for(running, timeout=10)
        with pytest.raises(BackendUnavailableError, match="restarting"):
            await backend.complete(GREETING, SHORT)
        assert await backend.wait_until_ready(60)
        assert backend.pid not in (None, first)
        assert _gone(first)  # reaped, not a zombie
        assert await backend.complete(GREETING, GREEDY)
    finally:
        await backend.aclose()


async def test_without_restart_a_dead_child_stays_reported() -> None:
    backend = await asyncio.to_thread(_start, restart=False, warm_up=False)
    try:
        pid = backend.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while backend.pid is not None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert backend.pid is None
        with pytest.raises(BackendUnavailableError):
            await backend.complete(GREETING, SHORT)
        assert not await backend.wait_until_ready(0.2)
    finally:
        await backend.aclose()


async def test_closing_ends_and_reaps_the_child() -> None:
    backend = await asyncio.to_thread(_start, warm_up=False)
    pid = backend.pid
    assert pid is not None
    running = asyncio.create_task(
        backend.complete(NUMBERS, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
    )
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await backend.aclose()
    assert time.monotonic() - t0 < 5.0
    assert _gone(pid)
    assert backend.pid is None
    with pytest.raises(BackendError, match="closed"):
        await asyncio.wait_for(running, timeout=5)
    with pytest.raises(BackendError, match="closed"):
        await backend.complete(GREETING, SHORT)
    await backend.aclose()  # twice is fine


def test_the_child_exits_when_the_bot_dies_without_closing() -> None:
    code = (
        "import os, sys; from model import ProcessLlamaBackend, bundled_model_path; "
        "b = ProcessLlamaBackend(bundled_model_path(), n_ctx=512, n_threads=1, warm_up=False); "
        "print(b.pid, flush=True); os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)  # its stdin closed: it left (and, orphaned, was reaped by init)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelConfigError, match=r"cannot load model .*broken\.gguf"):
        ProcessLlamaBackend(fake, n_ctx=512)
    with pytest.raises(ModelConfigError, match="not found"):
        ProcessLlamaBackend(tmp_path / "missing.gguf")


def test_the_setting_chooses_child_or_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().model_process == "child"
    monkeypatch.setenv("WENZHEN_MODEL_PROCESS", "thread")
    assert load_settings().model_process == "thread"
    monkeypatch.setenv("WENZHEN_MODEL_PROCESS", "fork")
    with pytest.raises(ConfigError, match="WENZHEN_MODEL_PROCESS"):
        load_settings()
