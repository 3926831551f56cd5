"""Telegram frontend, full stack: throughput and latency of consultation turns.

The real bot process (`wenzhen serve`, long polling, its embedded Redis, the engine-test
protocols) talks over loopback HTTP to the fake Bot API server of the test suite, run here.
Simulated patients, several at once, each go through a whole consultation (consent, intake,
follow-up questions by buttons and free text, advice); a turn is timed from the moment its
update is queued to the moment the bot message that ends it reaches the server.

Baseline, measured in the same run against the same server and the same patients' pace: a bare
aiogram echo bot (same aiogram session, one reply per message, no Redis, no engine). The ratio
says what wenzhen costs over the framework itself.

Then the emergency path: a new patient writes "chest pain and sweating" at intervals while the
other patients are mid-consultation; the time to the emergency reply is reported, and the same
on an idle bot for comparison. Last, with a model that is busy: an OpenAI-compatible server run
here that generates one completion at a time, slowly (--model-delay), so every consulting
patient waits for it; emergency replies must not.

    .venv/bin/python benchmarks/telegram_throughput.py [--patients 16] [--consultations 48]

Bounded: a fixed number of consultations, at most --seconds per phase. Loopback only.
Last line: `telegram_turns_per_s: <value>`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.helpers import fixture_rules_dir  # noqa: E402
from tests.telegram_fixtures.fake_api import FakeBotAPI, FakeUser, says  # noqa: E402
from tests.telegram_fixtures.process import BotProcess  # noqa: E402
from tests.telegram_fixtures.scripts import CONSULTATION, ECHO, Step  # noqa: E402


def run_echo_bot() -> None:
    """The baseline: the smallest aiogram bot, on the same session settings as wenzhen's."""
    import os

    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_BASE"]), timeout=20)
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"], session=session)
    asyncio.run(dispatcher.start_polling(bot, handle_signals=True))


async def play(user: FakeUser, steps: list[Step], latencies: list[float]) -> None:
    for action, value, until in steps:
        started = time.perf_counter()
        if action == "say":
            await user.say(value, until=until, within=30)
        else:
            await user.tap(value, until=until, within=30)
        latencies.append(time.perf_counter() - started)


async def load(
    api: FakeBotAPI, steps: list[Step], patients: int, consultations: int, seconds: float
) -> tuple[list[float], float]:
    """`consultations` scripted conversations, `patients` at a time; latencies and wall time."""
    latencies: list[float] = []
    queue = list(range(consultations))
    deadline = time.perf_counter() + seconds

    async def patient() -> None:
        while queue and time.perf_counter() < deadline:
            queue.pop()
            await play(api.user(random.randint(10**8, 10**9)), steps, latencies)

    started = time.perf_counter()
    await asyncio.gather(*(patient() for _ in range(patients)))
    return latencies, time.perf_counter() - started


async def emergencies(api: FakeBotAPI, count: int, every: float) -> list[float]:
    latencies: list[float] = []
    for _ in range(count):
        user = api.user(random.randint(10**8, 10**9))
        started = time.perf_counter()
        await user.say("chest pain and sweating", until=says("120"), within=30)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(every)
    return latencies


class BusyModel:
    """An OpenAI-compatible server with one slow GPU: one completion at a time, `delay` each."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.completions = 0
        self._gpu = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> BusyModel:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "busy", "object": "model"}]})

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._gpu:
            await asyncio.sleep(self.delay)
            self.completions += 1
        text = str(body["messages"][-1]["content"])[-200:]
        return web.json_response(
            {
                "id": "busy",
                "object": "chat.completion",
                "model": "busy",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
            }
        )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(name: str, latencies: list[float], wall: float) -> float:
    rate = len(latencies) / wall
    print(
        f"{name:<22} {len(latencies):5d} turns in {wall:6.2f} s: {rate:7.1f} turns/s, "
        f"p50 {pct(latencies, 0.5):7.1f} ms, p99 {pct(latencies, 0.99):7.1f} ms"
    )
    return rate


async def phase(
    token: str,
    workdir: Path,
    command: list[str] | None,
    body: Callable[[FakeBotAPI], Awaitable[None]],
    env: dict[str, str] | None = None,
) -> None:
    async with FakeBotAPI(token) as api:
        rules = fixture_rules_dir(workdir)
        bot = BotProcess(api, workdir=workdir, redis_url=None, rules_dir=rules, env=env)
        if command is not None:
            bot.command = command
        await bot.start(within=60)
        try:
            await body(api)
        finally:
            await bot.stop(within=30)


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wenzhen-bench-"))
    results: dict[str, float] = {}
    turns = len(CONSULTATION)
    print(f"{args.patients} patients at a time, {args.consultations} conversations of {turns} turns")

    async def echo_body(api: FakeBotAPI) -> None:
        latencies, wall = await load(api, ECHO, args.patients, args.consultations, args.seconds)
        results["echo"] = report("aiogram echo bot", latencies, wall)

    async def wenzhen_body(api: FakeBotAPI) -> None:
        await load(api, CONSULTATION, 2, 2, args.seconds)  # warm-up
        idle = await emergencies(api, 10, 0.02)
        latencies, wall = await load(api, CONSULTATION, args.patients, args.consultations, args.seconds)
        results["wenzhen"] = report("wenzhen consultation", latencies, wall)
        consulting = asyncio.ensure_future(
            load(api, CONSULTATION, args.patients, args.consultations, args.seconds)
        )
        await asyncio.sleep(0.2)
        busy = await emergencies(api, 20, 0.05)
        await consulting
        for label, samples in (("idle bot", idle), (f"{args.patients} patients consulting", busy)):
            print(
                f"emergency reply, {label + ':':<26} "
                f"p50 {pct(samples, 0.5):7.1f} ms, p99 {pct(samples, 0.99):7.1f} ms"
            )
        results["emergency_busy_p99_ms"] = pct(busy, 0.99)

    async def model_body(api: FakeBotAPI) -> None:
        consulting = asyncio.ensure_future(load(api, CONSULTATION, 8, 16, args.seconds))
        await asyncio.sleep(1.0)  # every patient is waiting for the model now
        busy = await emergencies(api, 10, 0.1)
        latencies, wall = await consulting
        report("consultation, model", latencies, wall)
        print(
            f"emergency reply, {'model busy:':<26} "
            f"p50 {pct(busy, 0.5):7.1f} ms, p99 {pct(busy, 0.99):7.1f} ms "
            f"({model.completions} completions of {args.model_delay} s, one at a time)"
        )

    echo = [sys.executable, str(SCRIPT), "--echo-bot"]
    await phase("810001:BENCH-echo", tmp / "echo", echo, echo_body)
    await phase("810002:BENCH-wenzhen", tmp / "wenzhen", None, wenzhen_body)
    async with BusyModel(args.model_delay) as model:
        env = {"WENZHEN_MODEL": model.url, "WENZHEN_MODEL_PHRASE_SECONDS": "3"}
        await phase("810003:BENCH-model", tmp / "model", None, model_body, env)
    print(f"wenzhen / echo throughput: {results['wenzhen'] / results['echo']:.2f}")
    print(f"telegram_turns_per_s: {results['wenzhen']:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--consultations", type=int, default=96)
    parser.add_argument("--model-delay", type=float, default=0.4, help="seconds per model completion")
    parser.add_argument("--seconds", type=float, default=60.0, help="at most this long per load phase")
    parser.add_argument("--echo-bot", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.echo_bot:
        run_echo_bot()
    else:
        asyncio.run(main(arguments))
