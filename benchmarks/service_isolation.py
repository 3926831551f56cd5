"""Does a busy model slow the emergency path? (issue 5: at most 2x the idle latency)

Through the real consultation service with the bundled model rewording replies: the latency of
an emergency reply when the model is idle, and when 8 other patients' replies are queued for
generation at the same moment. Both measured in the same run.

    .venv/bin/python benchmarks/service_isolation.py [--rounds 5]

Last line: `emergency_busy_idle_ratio: <p50 busy / p50 idle>`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time

import httpx

from bot.phrasing import AssistantPhraser
from clinical import RULES_DIR
from dialog.events import Inbound
from dialog.ruleset import load_rules
from dialog.service import ConsultationService
from model import Assistant, GenerationQueue, bundled_model_path, create_backend
from safety import REGIONS
from storage.memory import MemoryStore

BUSY_PATIENTS = 8
EMERGENCY = "my husband collapsed and is not breathing"


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
            sys.executable,
            "-m",
            "llama_cpp.server",
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


async def measure(backend_spec: str, rounds: int) -> tuple[list[float], list[float], list[int]]:
    rules = load_rules(RULES_DIR)
    store = MemoryStore()
    plain = ConsultationService(rules, store, REGIONS["cn"], default_lang="en")
    backend = await asyncio.to_thread(create_backend, backend_spec, n_threads=1, languages=("en",))
    assert backend is not None
    queue = GenerationQueue(backend, max_pending=64)
    phraser = AssistantPhraser(Assistant(queue, phrase_deadline_s=30.0, read_answers=False))
    service = ConsultationService(rules, store, REGIONS["cn"], default_lang="en", phraser=phraser)

    idle = [await emergency_latency(service, f"idle-{i}") for i in range(rounds * 4)]
    busy: list[float] = []
    queued: list[int] = []
    for round_number in range(rounds):
        patients = [f"busy-{round_number}-{i}" for i in range(BUSY_PATIENTS)]
        for patient in patients:
            await prepare(plain, patient)
        load = [
            asyncio.create_task(service.handle(Inbound(patient_id=p, kind="button", data="sex:M")))
            for p in patients
        ]
        while queue.pending + queue.running < BUSY_PATIENTS:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.005)
        queued.append(queue.pending + queue.running)
        busy.append(await emergency_latency(service, f"emergency-{round_number}"))
        await asyncio.gather(*load)
    await queue.aclose()
    return idle, busy, queued


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, idle: list[float], busy: list[float], queued: list[int]) -> float:
    ratio = ms(busy, 0.5) / ms(idle, 0.5)
    print(f"{name}: generations queued or running when the emergency arrived: {queued}")
    print(
        f"  idle: n={len(idle)} p50 {ms(idle, 0.5):.2f} ms  max {1000 * max(idle):.2f} ms  "
        f"mean {1000 * statistics.fmean(idle):.2f} ms"
    )
    print(
        f"  busy: n={len(busy)} p50 {ms(busy, 0.5):.2f} ms  max {1000 * max(busy):.2f} ms  "
        f"mean {1000 * statistics.fmean(busy):.2f} ms   busy/idle p50 {ratio:.2f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=["in-process", "server", "both"], default="both")
    args = parser.parse_args()
    ratios = {}
    if args.backend in ("in-process", "both"):
        ratios["in-process"] = report(
            "in-process (llama.cpp in a worker thread)", *asyncio.run(measure("bundled", args.rounds))
        )
    if args.backend in ("server", "both"):
        process, url = start_server()
        try:
            ratios["server"] = report(
                "llama_cpp.server subprocess over HTTP", *asyncio.run(measure(url, args.rounds))
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    headline = ratios.get("in-process", next(iter(ratios.values())))
    print(f"emergency_busy_idle_ratio: {headline:.2f}")


if __name__ == "__main__":
    main()
