"""Load: N simulated patients at once (1,000 by default) against the real bot process.

`wenzhen serve` (long polling, WENZHEN_MODEL=none, the engine-test protocols) talks over loopback
HTTP to the test suite's fake Bot API server, run here, on a Redis this script starts (embedded
redis-server) so that its memory can be read. All N patients start together; each runs a short
consultation (consent, intake, a follow-up question, free text, advice: 8 turns). A turn is timed
from the moment its update is queued to the moment the bot message that ends it arrives.

Counted: every message each patient receives is compared with what one patient alone receives
(a reference run first): a turn that never ends is lost, a message beyond the reference's is a
duplicate, a different sequence is reordered. Reported: throughput, p50/p95/p99 turn latency,
Redis memory per consultation (INFO memory `used_memory` after minus before, over N), the bot
process's RSS (before, peak, after), and the bot's own /metrics (turns and their latency).

Baseline, in the same run: the same N patients and the same number of turns against a bare
aiogram echo bot (benchmarks/telegram_throughput.py --echo-bot) on the same fake server.

    .venv/bin/python benchmarks/load.py [--patients 1000] [--within 300]

Loopback only; bounded by --within seconds per turn. Last line: `load_turns_per_s: <value>`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from storage.embedded import EmbeddedRedis  # noqa: E402
from tests.helpers import fixture_rules_dir  # noqa: E402
from tests.telegram_fixtures import updates  # noqa: E402
from tests.telegram_fixtures.fake_api import FakeBotAPI, Sent  # noqa: E402
from tests.telegram_fixtures.process import BotProcess  # noqa: E402
from tests.telegram_fixtures.scripts import CONSULTATION, ECHO, Step  # noqa: E402


class LoadAPI(FakeBotAPI):
    """The fake Bot API with what thousands of waiting patients need: a wake-up per chat
    instead of one condition for all, and the pending updates found by bisection."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.arrived: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def _pending(self) -> list[dict[str, Any]]:
        first = bisect.bisect_right(self._updates, self._confirmed, key=lambda u: int(u["update_id"]))
        return self._updates[first:]

    async def _deliver(self, params: dict[str, Any], text: str, copied_from: int | None = None) -> Any:
        response = await super()._deliver(params, text, copied_from)
        self.arrived[int(params["chat_id"])].set()
        return response


@dataclass
class Patient:
    api: LoadAPI
    user_id: int
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    instead: list[str] = field(default_factory=list)  # what a lost turn got instead of its answer
    finished: float = 0.0  # when its last answered turn ended

    async def play(self, steps: list[Step], within: float) -> None:
        for action, value, until in steps:
            if action == "say":
                update = updates.message(self.user_id, value)
            else:
                shown = next((m for m in reversed(self.api.sent_to(self.user_id)) if value in m.data), None)
                if shown is None:
                    self.lost += 1
                    return
                update = updates.tap(
                    self.user_id, value, message_id=shown.message_id, keyboard=shown.markup()
                )
                update["callback_query"]["message"]["from"]["id"] = self.api.bot_id
            if not await self.turn(update, until, within):
                self.lost += 1
                return

    async def turn(self, update: dict[str, Any], until: Callable[[Sent], bool], within: float) -> bool:
        mine = self.api._by_chat[self.user_id]
        start = len(mine)
        arrived = self.api.arrived[self.user_id]
        began = time.perf_counter()
        await self.api.push(update)
        deadline = began + within
        while not any(until(m) for m in mine[start:]):
            left = deadline - time.perf_counter()
            if left <= 0:
                return self._gave_up(mine[start:])
            try:
                await asyncio.wait_for(arrived.wait(), left)
            except TimeoutError:
                return self._gave_up(mine[start:])
            arrived.clear()
        self.finished = time.perf_counter()
        self.latencies.append(self.finished - began)
        return True

    def _gave_up(self, got: list[Sent]) -> bool:
        self.instead.append(" | ".join(m.text[:40] for m in got) or "nothing")
        return False


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def settle(api: LoadAPI, quiet: float = 1.0, within: float = 30.0) -> None:
    """Until no message has arrived for `quiet` seconds (late duplicates would show by then)."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        count = len(api.messages)
        await asyncio.sleep(quiet)
        if len(api.messages) == count:
            return


@dataclass
class Result:
    label: str
    patients: int
    turns: int
    wall: float
    latencies: list[float]
    lost: int
    duplicated: int
    reordered: int
    instead: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.turns / self.wall

    def line(self) -> str:
        return (
            f"{self.label:<22} {self.patients} patients, {self.turns} turns in {self.wall:6.1f} s: "
            f"{self.rate:6.1f} turns/s; latency p50 {pct(self.latencies, 0.5):7.1f} ms, "
            f"p95 {pct(self.latencies, 0.95):7.1f} ms, p99 {pct(self.latencies, 0.99):7.1f} ms; "
            f"lost {self.lost}, duplicated {self.duplicated}, reordered {self.reordered}"
        )


async def run_load(
    api: LoadAPI, steps: list[Step], patients: int, within: float, label: str, *, base: int = 10**9
) -> Result:
    """A reference patient alone, then `patients` at once; user ids from `base` on."""
    reference = Patient(api, base)
    await reference.play(steps, within)
    expected = [m.text for m in api.sent_to(reference.user_id)]
    if reference.lost:
        raise SystemExit(f"{label}: the reference consultation did not finish: {expected}")
    crowd = [Patient(api, base + 1 + n) for n in range(patients)]
    started = time.perf_counter()
    await asyncio.gather(*(patient.play(steps, within) for patient in crowd))
    # throughput over the time the answered turns took, not the wait for lost ones to time out
    wall = max(p.finished for p in crowd) - started
    await settle(api)
    duplicated = reordered = 0
    for patient in crowd:
        got = [m.text for m in api.sent_to(patient.user_id)]
        duplicated += max(0, len(got) - len(expected))
        if not patient.lost and got != expected:
            reordered += 1
    return Result(
        label,
        patients,
        sum(len(p.latencies) for p in crowd),
        wall,
        [s for p in crowd for s in p.latencies],
        sum(p.lost for p in crowd),
        duplicated,
        reordered,
        Counter(got for p in crowd for got in p.instead),
    )


async def scrape(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as client, client.get(url) as answer:
        text = await answer.text()
    found: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] += sample.value
    return found


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wenzhen-load-"))
    rules = fixture_rules_dir(tmp)
    turns = len(CONSULTATION)
    print(f"{args.patients} patients at once, {turns} turns each")

    baseline: Result | None = None
    if not args.no_baseline:
        async with LoadAPI("820001:LOAD-echo") as api:
            echo = BotProcess(api, workdir=tmp / "echo", redis_url=None, rules_dir=rules)
            echo.command = [sys.executable, str(ROOT / "benchmarks" / "telegram_throughput.py"), "--echo-bot"]
            await echo.start(within=60)
            try:
                baseline = await run_load(api, ECHO, args.patients, args.within, "aiogram echo bot")
            finally:
                await echo.stop(within=30)
        print(baseline.line())

    server = EmbeddedRedis(tmp / "redis")
    redis = Redis.from_url(server.url)
    try:
        async with LoadAPI("820002:LOAD-wenzhen") as api:
            # Telegram's own pace: the product's request timeout, not the test suite's short one
            env = {"WENZHEN_TELEGRAM_REQUEST_TIMEOUT": str(args.request_timeout)}
            if args.redis_pool:
                env["WENZHEN_REDIS_MAX_CONNECTIONS"] = str(args.redis_pool)
            bot = BotProcess(api, workdir=tmp / "wenzhen", redis_url=server.url, rules_dir=rules, env=env)
            await bot.start(within=60)
            assert bot.process is not None
            pid = bot.process.pid
            try:
                # one consultation first, so that what is measured is the steady state
                await run_load(api, CONSULTATION, 1, args.within, "warm-up", base=5 * 10**8)
                memory_before = int((await redis.info("memory"))["used_memory"])
                rss_before = rss_kib(pid)
                metrics_before = await scrape(bot.probe_url + "/metrics")
                peak = rss_before
                clients = 0
                done = asyncio.Event()

                async def sample_rss() -> None:
                    nonlocal peak, clients
                    while not done.is_set():
                        peak = max(peak, rss_kib(pid))
                        clients = max(clients, int((await redis.info("clients"))["connected_clients"]))
                        await asyncio.sleep(0.25)

                sampler = asyncio.ensure_future(sample_rss())
                result = await run_load(api, CONSULTATION, args.patients, args.within, "wenzhen consultation")
                done.set()
                await sampler
                rss_after = rss_kib(pid)
                memory_after = int((await redis.info("memory"))["used_memory"])
                metrics_after = await scrape(bot.probe_url + "/metrics")
                keys = await redis.dbsize()
            finally:
                await bot.stop(within=60)
    finally:
        await redis.aclose()
        server.close()

    print(result.line())
    for got, count in result.instead.most_common(3):
        print(f"  {count} lost turn(s) got instead: {got}")
    consultations = args.patients + 1  # the crowd and its reference patient
    per_consultation = (memory_after - memory_before) / consultations
    print(
        f"redis used_memory {memory_before / 2**20:.1f} MiB -> {memory_after / 2**20:.1f} MiB: "
        f"{per_consultation / 1024:.1f} KiB per consultation ({keys} keys); "
        f"at most {clients} Redis connections open"
    )
    print(
        f"bot process RSS {rss_before / 1024:.1f} MiB before, {peak / 1024:.1f} MiB peak, "
        f"{rss_after / 1024:.1f} MiB after ({(rss_after - rss_before) / consultations:.1f} KiB "
        f"per consultation kept)"
    )
    served = metrics_after["wenzhen_turns_total"] - metrics_before["wenzhen_turns_total"]
    seconds = metrics_after["wenzhen_turn_seconds_sum"] - metrics_before["wenzhen_turn_seconds_sum"]
    errors = metrics_after["wenzhen_telegram_errors_total"] - metrics_before["wenzhen_telegram_errors_total"]
    mean = 1000 * seconds / max(served, 1)
    print(
        f"the bot's /metrics: {served:.0f} turns handled, mean handling {mean:.1f} ms "
        f"(queueing in the bot and the fake server excluded), {errors:.0f} Telegram errors"
    )
    if baseline is not None:
        print(f"wenzhen / echo throughput: {result.rate / baseline.rate:.2f}")
    print(f"lost messages: {result.lost}, duplicated: {result.duplicated}, reordered: {result.reordered}")
    print(f"load_turns_per_s: {result.rate:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--within", type=float, default=300.0, help="seconds a turn may take at most")
    parser.add_argument("--no-baseline", action="store_true", help="skip the echo bot")
    parser.add_argument("--request-timeout", type=float, default=20.0, help="the bot's Bot API timeout")
    parser.add_argument("--redis-pool", type=int, default=None, help="WENZHEN_REDIS_MAX_CONNECTIONS")
    asyncio.run(main(parser.parse_args()))
