"""Backend overhead, and the speed of the bundled model on this machine.

Tokens per second of `LlamaBackend.complete` (worker thread, lock, streaming with a stop check
per token, awaited from the event loop) and of `ProcessLlamaBackend.complete` (the same in a
child process, the request and the reply over a pipe) against raw llama-cpp-python
(`Llama.create_chat_completion` on the in-process backend's loaded model, called directly)
generating the same greedy reply to the same prompt, rotating which goes first in each round.
Goal: ratio >= 0.95. Then time to first token (a fresh prompt each round, so the prompt is really
evaluated) and tokens per second through `stream` of each backend.

    .venv/bin/python benchmarks/model_backend.py [--model PATH.gguf] [--rounds 5] [--tokens 128]
        [--threads N]

Last lines: `model_backend_child_ratio: <child process tokens/s over raw tokens/s>`, then
`model_backend_ratio: <in-process backend tokens/s over raw tokens/s>`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from model import (
    Backend,
    ChatMessage,
    GenerationOptions,
    LlamaBackend,
    ProcessLlamaBackend,
    bundled_model_path,
)

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a long, detailed story about a village doctor who walks to see patients in the mountains."


async def measure(args: argparse.Namespace) -> None:
    path = args.model or bundled_model_path()
    t0 = time.perf_counter()
    backend = LlamaBackend(path, n_threads=args.threads, n_ctx=2048)
    print(f"model: {backend.path.name}; loaded and warmed up in {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    child = await asyncio.to_thread(ProcessLlamaBackend, path, n_threads=args.threads, n_ctx=2048)
    print(f"child process: started, loaded and warmed up in {time.perf_counter() - t0:.2f} s")
    llm = backend.llama
    messages = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=PROMPT)]
    raw_messages: Any = [m.model_dump() for m in messages]
    options = GenerationOptions(max_tokens=args.tokens, temperature=0.0, seed=1)
    backends: dict[str, Backend] = {"backend": backend, "child": child}

    def raw() -> tuple[str, int]:
        reply: Any = llm.create_chat_completion(
            raw_messages, max_tokens=args.tokens, temperature=0.0, top_p=options.top_p, seed=1
        )
        return reply["choices"][0]["message"]["content"], reply["usage"]["completion_tokens"]

    reference = raw()  # every path now finds the prompt in llama.cpp's cache
    for each in backends.values():
        await each.complete(messages, options)
    tps: dict[str, list[float]] = {"raw": [], "backend": [], "child": []}
    order = ["raw", "backend", "child"]
    for round_ in range(args.rounds):
        replies: dict[str, tuple[str, float]] = {}
        for which in order[round_ % 3 :] + order[: round_ % 3]:
            start = time.perf_counter()
            if which == "raw":
                text, tokens = raw()
                tps["raw"].append(tokens / (time.perf_counter() - start))
                reference = text, tokens
            else:
                text = await backends[which].complete(messages, options)
                replies[which] = text, time.perf_counter() - start
        for which, (text, elapsed) in replies.items():
            if text != reference[0]:
                print(f"round {round_}: {which} reply differs; counting its tokens by tokenizing")
                tokens = len(llm.tokenize(text.encode("utf-8"), add_bos=False))
            else:
                tokens = reference[1]
            tps[which].append(tokens / elapsed)
    median = {which: statistics.median(samples) for which, samples in tps.items()}
    print(f"{args.rounds} rounds of {reference[1]} greedy tokens (max {args.tokens}), threads={args.threads}")
    print(f"raw llama-cpp-python: {median['raw']:.1f} tokens/s (median; {_spread(tps['raw'])})")
    print(f"LlamaBackend.complete: {median['backend']:.1f} tokens/s (median; {_spread(tps['backend'])})")
    print(f"ProcessLlamaBackend.complete: {median['child']:.1f} tokens/s (median; {_spread(tps['child'])})")

    for name, each in (("LlamaBackend", backend), ("ProcessLlamaBackend", child)):
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
            async for _ in each.stream(fresh, options):
                chunks += 1
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
            assert first is not None
            ttfts.append((first - start) * 1000)
            if chunks > 1:
                stream_tps.append((chunks - 1) / (end - first))
        print(
            f"bundled model via {name}.stream: time to first token {statistics.median(ttfts):.0f} ms "
            f"(median; {_spread(ttfts)}), {statistics.median(stream_tps):.1f} tokens/s after it"
        )
    backend.close()
    await child.aclose()
    print(f"model_backend_child_ratio: {median['child'] / median['raw']:.3f}")
    print(f"model_backend_ratio: {median['backend'] / median['raw']:.3f}")


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
