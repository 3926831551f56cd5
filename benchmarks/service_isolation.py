"""Does a busy model slow the emergency path? (issue 5: at most 2x the idle latency)

Through the real consultation service with the bundled model rewording replies: the latency of
an emergency reply when the model is idle, and when 8 other patients' replies are queued for
generation at the same moment. Each round brings 8 patients to the same point and sends each a
message, then the emergency; the rounds alternate between the model idle (the 8 messages are
answered without rewording, so the bot did the same work and only the model is missing) and
busy (their rewording is queued, and the emergency arrives right after the 8th is). A third
figure, the emergency repeated back to back with nothing in between, is printed too: the ratio
against it adds the cost of the bot's own caches going cold between patients to the model's.
All measured in the same run, for each of three ways to run the same model (one llama.cpp
thread each):

- `child`: `ProcessLlamaBackend`, llama-cpp-python in a child process over a pipe (the default);
- `thread`: `LlamaBackend`, llama-cpp-python on a worker thread of the bot's process;
- `server`: `python -m llama_cpp.server` in a subprocess, reached over HTTP by `HttpBackend`.

    .venv/bin/python benchmarks/service_isolation.py [--rounds 5] [--backend all|child|thread|server]
        [--rules DIR]

Last line: `emergency_busy_idle_ratio: <p50 busy / p50 idle>` (idle: the alternating idle rounds) of
the default backend (`child`), or of the only one measured.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import httpx

from bot.phrasing import AssistantPhraser
from clinical import RULES_DIR
from dialog.events import Inbound
from dialog.ruleset import load_rules
from dialog.service import ConsultationService
from model import Assistant, GenerationQueue, bundled_model_path, create_backend
from model.factory import Process
from model.llama import python_module_command
from safety import REGIONS
from storage.memory import MemoryStore

BUSY_PATIENTS = 8
EMERGENCY = "my husband collapsed and is not breathing"
VARIANTS = {
    "child": "child process (ProcessLlamaBackend over a pipe, the default)",
    "thread": "in process (LlamaBackend on a worker thread)",
    "server": "llama_cpp.server subprocess over HTTP",
}


async def prepare(service: ConsultationService, patient: str) -> None:
    """Bring a patient to the point where their next reply makes the bot ask (and phrase) a question."""
    for inbound in (
        Inbound(patient_id=patient, kind="text", text="I have had a cough for a few days"),
        Inbound(patient_id=patient, kind="button", data="consent:yes"),
        Inbound(patient_id=patient, kind="button", data="who:self"),
        Inbound(patient_id=patient, kind="text", text="40"),
    ):
        await service.handle(inbound)


async def emergency_latency(service: ConsultationService, patient: str) -> float:
    started = time.perf_counter()
    actions = await service.handle(Inbound(patient_id=patient, kind="text", text=EMERGENCY))
    elapsed = time.perf_counter() - started
    assert any(getattr(a, "purpose", "") == "emergency" for a in actions)
    return elapsed


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """The bundled model behind a local `llama_cpp.server` (loopback only)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            # loads the model without llama.cpp's extra CPU buffers where those crash
            *python_module_command("llama_cpp.server"),
            "--model",
            str(bundled_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start")


class Latencies(NamedTuple):
    back_to_back: list[float]
    idle: list[float]
    busy: list[float]
    queued: list[int]


async def measure(
    backend_spec: str, rounds: int, process: Process = "child", rules_dir: Path = RULES_DIR
) -> Latencies:
    rules = load_rules(rules_dir)
    store = MemoryStore()
    plain = ConsultationService(rules, store, REGIONS["cn"], default_lang="en")
    backend = await asyncio.to_thread(
        create_backend, backend_spec, n_threads=1, languages=("en",), process=process
    )
    assert backend is not None
    queue = GenerationQueue(backend, max_pending=64)
    phraser = AssistantPhraser(Assistant(queue, phrase_deadline_s=30.0, read_answers=False))
    service = ConsultationService(rules, store, REGIONS["cn"], default_lang="en", phraser=phraser)

    back_to_back = [await emergency_latency(service, f"repeat-{i}") for i in range(rounds * 4)]
    idle: list[float] = []
    busy: list[float] = []
    queued: list[int] = []
    for round_number in range(rounds):
        patients = [f"idle-{round_number}-{i}" for i in range(BUSY_PATIENTS)]
        for patient in patients:
            await prepare(plain, patient)
        await asyncio.gather(*(plain.handle(next_answer(p)) for p in patients))
        idle.append(await emergency_latency(service, f"idle-emergency-{round_number}"))

        patients = [f"busy-{round_number}-{i}" for i in range(BUSY_PATIENTS)]
        for patient in patients:
            await prepare(plain, patient)
        load = [asyncio.create_task(service.handle(next_answer(p))) for p in patients]
        while queue.pending + queue.running < BUSY_PATIENTS:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.005)
        queued.append(queue.pending + queue.running)
        busy.append(await emergency_latency(service, f"busy-emergency-{round_number}"))
        await asyncio.gather(*load)
    await queue.aclose()
    await backend.aclose()
    return Latencies(back_to_back, idle, busy, queued)


def next_answer(patient: str) -> Inbound:
    """The answer after `prepare`: the bot then asks (and, with a phraser, rewords) a question."""
    return Inbound(patient_id=patient, kind="button", data="sex:M")


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(label: str, values: list[float]) -> str:
    return (
        f"  {label}: n={len(values)} p50 {ms(values, 0.5):.2f} ms  max {1000 * max(values):.2f} ms  "
        f"mean {1000 * statistics.fmean(values):.2f} ms"
    )


def report(name: str, latencies: Latencies) -> float:
    ratio = ms(latencies.busy, 0.5) / ms(latencies.idle, 0.5)
    print(f"{name}: generations queued or running when the emergency arrived: {latencies.queued}")
    print(describe("back to back", latencies.back_to_back))
    print(describe("idle", latencies.idle))
    print(
        describe("busy", latencies.busy) + f"   busy/idle p50 {ratio:.2f}"
        f"   busy/back-to-back p50 {ms(latencies.busy, 0.5) / ms(latencies.back_to_back, 0.5):.2f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=[*VARIANTS, "all"], default="all")
    parser.add_argument("--rules", type=Path, default=RULES_DIR, help="rules directory (default: clinical/)")
    args = parser.parse_args()
    ratios = {}
    for variant, name in VARIANTS.items():
        if args.backend not in (variant, "all"):
            continue
        if variant == "server":
            process, url = start_server()
            try:
                ratios[variant] = report(name, asyncio.run(measure(url, args.rounds, rules_dir=args.rules)))
            finally:
                process.terminate()
                process.wait(timeout=10)
        else:
            mode: Process = "thread" if variant == "thread" else "child"
            ratios[variant] = report(
                name, asyncio.run(measure("bundled", args.rounds, mode, rules_dir=args.rules))
            )
    print("busy/idle p50 by backend: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    headline = ratios.get("child", next(iter(ratios.values())))
    print(f"emergency_busy_idle_ratio: {headline:.2f}")


if __name__ == "__main__":
    main()
