"""Isolation at the model layer: does a busy generation queue slow down the event loop?

A probe stands in for the emergency path (it wakes on a timer and does a little pure-Python
work, the way an emergency reply does with no model and no queue). Its latency is measured with
the loop idle, then with 8 generations of the bundled model queued behind one worker thread.
The consultation-level benchmark (an emergency reply through the service) belongs to the
service; this one isolates what `model/` adds: the worker thread and the GIL it shares.

    .venv/bin/python benchmarks/model_queue.py [--probes 300] [--tokens 64] [--threads N]

Last line: `model_queue_probe_p99_ratio: <busy p99 over idle p99>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from model import (
    Backend,
    ChatMessage,
    GenerationOptions,
    GenerationQueue,
    LlamaBackend,
    Priority,
    bundled_model_path,
)

_WORDS = re.compile(r"chest pain|can't breathe|unconscious|胸痛|呼吸困难")
TEXT = "my father has chest pain and he can't breathe properly, 我爸爸胸痛 " * 4


def emergency_work() -> str:
    found = _WORDS.findall(TEXT.lower())
    return json.dumps({"flags": found, "reply": "Call 120 now."})


async def probe_latencies(count: int, stop: asyncio.Event | None = None) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        if stop is not None and stop.is_set():
            break
        due = time.perf_counter() + 0.005
        await asyncio.sleep(0.005)
        emergency_work()
        samples.append((time.perf_counter() - due) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> str:
    return (
        f"p50 {percentile(samples, 0.5):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms, "
        f"max {max(samples):.2f} ms ({len(samples)} probes)"
    )


async def measure(args: argparse.Namespace) -> None:
    backend = LlamaBackend(bundled_model_path(), n_threads=args.threads, n_ctx=2048)
    options = GenerationOptions(max_tokens=args.tokens, temperature=0.7)

    def job(i: int) -> Callable[[Backend], Coroutine[Any, Any, str]]:
        async def run(b: Backend) -> str:
            messages = [ChatMessage(role="user", content=f"Tell patient {i} a short story about a doctor.")]
            return await b.complete(messages, options)

        return run

    idle = await probe_latencies(args.probes)
    async with GenerationQueue(backend, max_pending=16) as queue:
        start = time.perf_counter()
        generations = [
            asyncio.create_task(queue.submit(job(i), deadline_s=600, priority=Priority.PATIENT))
            for i in range(8)
        ]
        stop = asyncio.Event()
        everything = asyncio.gather(*generations)
        everything.add_done_callback(lambda _: stop.set())
        await asyncio.sleep(0.05)
        busy = await probe_latencies(args.probes, stop)
        results = await everything
        took = time.perf_counter() - start
    backend.close()
    print(
        f"8 generations of up to {args.tokens} tokens: {[r.outcome.value for r in results].count('ok')} ok "
        f"in {took:.1f} s; probes during them: {len(busy)}"
    )
    print(f"idle loop: {summary(idle)}")
    print(f"busy loop: {summary(busy)}")
    print(f"model_queue_probe_p99_ratio: {percentile(busy, 0.99) / percentile(idle, 0.99):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
