"""In-process backend overhead, and the speed of the bundled model on this machine.

Tokens per second of `LlamaBackend.complete` (worker thread, lock, streaming with a stop check
per token, awaited from the event loop) against raw llama-cpp-python (`Llama.create_chat_completion`
on the same loaded model, called directly) generating the same greedy reply to the same prompt,
alternating which goes first in each round. Goal: ratio >= 0.95. Then time to first token (a
fresh prompt each round, so the prompt is really evaluated) and tokens per second through
`LlamaBackend.stream`.

    .venv/bin/python benchmarks/model_backend.py [--model PATH.gguf] [--rounds 5] [--tokens 128]
        [--threads N]

Last line: `model_backend_ratio: <backend tokens/s over raw tokens/s>`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from model import ChatMessage, GenerationOptions, LlamaBackend, bundled_model_path

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a long, detailed story about a village doctor who walks to see patients in the mountains."


async def measure(args: argparse.Namespace) -> None:
    path = args.model or bundled_model_path()
    t0 = time.perf_counter()
    backend = LlamaBackend(path, n_threads=args.threads, n_ctx=2048)
    print(f"model: {backend.path.name}; loaded and warmed up in {time.perf_counter() - t0:.2f} s")
    llm = backend.llama
    messages = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=PROMPT)]
    raw_messages: Any = [m.model_dump() for m in messages]
    options = GenerationOptions(max_tokens=args.tokens, temperature=0.0, seed=1)

    def raw() -> tuple[str, int]:
        reply: Any = llm.create_chat_completion(
            raw_messages, max_tokens=args.tokens, temperature=0.0, top_p=options.top_p, seed=1
        )
        return reply["choices"][0]["message"]["content"], reply["usage"]["completion_tokens"]

    raw()  # both paths now find the prompt in llama.cpp's cache
    await backend.complete(messages, options)
    raw_tps: list[float] = []
    backend_tps: list[float] = []
    for round_ in range(args.rounds):
        order = ("raw", "backend") if round_ % 2 == 0 else ("backend", "raw")
        for which in order:
            start = time.perf_counter()
            if which == "raw":
                text, tokens = raw()
                raw_tps.append(tokens / (time.perf_counter() - start))
                reference = text, tokens
            else:
                text = await backend.complete(messages, options)
                elapsed = time.perf_counter() - start
                backend_text = text
                backend_elapsed = elapsed
        if backend_text != reference[0]:
            print(f"round {round_}: replies differ; counting backend tokens by tokenizing")
            tokens = len(llm.tokenize(backend_text.encode("utf-8"), add_bos=False))
        else:
            tokens = reference[1]
        backend_tps.append(tokens / backend_elapsed)
    raw_median, backend_median = statistics.median(raw_tps), statistics.median(backend_tps)
    print(f"{args.rounds} rounds of {reference[1]} greedy tokens (max {args.tokens}), threads={args.threads}")
    print(f"raw llama-cpp-python: {raw_median:.1f} tokens/s (median; {_spread(raw_tps)})")
    print(f"LlamaBackend.complete: {backend_median:.1f} tokens/s (median; {_spread(backend_tps)})")

    ttfts: list[float] = []
    stream_tps: list[float] = []
    for round_ in range(args.rounds):
        fresh = [
            ChatMessage(role="system", content=f"{SYSTEM} Consultation {round_} {time.time_ns()}."),
            ChatMessage(role="user", content=PROMPT),
        ]
        start = time.perf_counter()
        first: float | None = None
        chunks = 0
        async for _ in backend.stream(fresh, options):
            chunks += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        assert first is not None
        ttfts.append((first - start) * 1000)
        if chunks > 1:
            stream_tps.append((chunks - 1) / (end - first))
    print(
        f"bundled model via LlamaBackend.stream: time to first token {statistics.median(ttfts):.0f} ms "
        f"(median; {_spread(ttfts)}), {statistics.median(stream_tps):.1f} tokens/s after it"
    )
    backend.close()
    print(f"model_backend_ratio: {backend_median / raw_median:.3f}")


def _spread(samples: list[float]) -> str:
    return f"min {min(samples):.1f}, max {max(samples):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="a .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
