"""What is particular to the child-process llama.cpp backend, with the real bundled model: errors
and cancellation across the pipe, a killed child, and no process left behind. The backend contract
shared with the in-process backend is tested for both in test_model_llama.py."""

from __future__ import annotations

import asyncio
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
    BackendError,
    BackendUnavailableError,
    ChatMessage,
    GenerationOptions,
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


async def test_the_model_generates_in_another_process(child: ProcessLlamaBackend) -> None:
    # the Backend contract itself (text, streaming, schemas, cancellation, a live event loop) is
    # tested for both GGUF backends in test_model_llama.py
    assert child.pid is not None
    assert child.pid != os.getpid()
    assert await child.complete(GREETING, SHORT)


async def test_errors_in_the_child_become_backend_errors(child: ProcessLlamaBackend) -> None:
    huge = [ChatMessage(role="user", content="word " * 5000)]  # far over n_ctx=2048
    with pytest.raises(BackendError, match="generation failed"):
        await child.complete(huge, GenerationOptions(max_tokens=4))
    with pytest.raises(BackendError, match="JSON schema"):
        await child.complete(GREETING, GREEDY, {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}})
    assert await child.complete(GREETING, SHORT) is not None  # the process serves on


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
