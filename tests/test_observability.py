"""Observability: Prometheus metrics, /healthz and /readyz, JSON logs without patient text.

In process: the delivery's error and retry counts, what the service's actions count, the guard,
the generation queue and model fallbacks through the wired dispatcher, readiness turning 503.
End to end: `wenzhen serve` (polling, JSON logs) against the fake Bot API on a Redis this test
owns; /metrics is scraped before and after an emergency and a whole consultation, its log is
parsed line by line, and /readyz goes 503 once that Redis is stopped. Every wait is on a
condition with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.methods import SendMessage
from aiogram.types import Update
from aiogram.utils.backoff import BackoffConfig
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bot.logs import JsonFormatter
from bot.metrics import Metrics
from bot.phrasing import AssistantPhraser
from bot.telegram import TelegramOptions, create_dispatcher
from bot.telegram.delivery import Delivery, DeliveryPolicy, PatientUnreachableError
from bot.telegram.escalations import LogEscalations
from bot.telegram.health import Probes, serve_probes
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from model import Assistant, GenerationQueue
from model.fake import FakeBackend
from model.queue import CircuitBreaker
from safety import REGIONS
from storage.embedded import EmbeddedRedis
from storage.memory import MemoryStore
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.fake_api import FakeBotAPI, offers, says
from tests.telegram_fixtures.process import BotProcess, free_port
from tests.telegram_fixtures.recording import TIMEOUT, RecordingSession

FAST = BackoffConfig(min_delay=0.01, max_delay=0.02, factor=2.0, jitter=0.0)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(check: Callable[[], Awaitable[bool]], within: float = 15.0, every: float = 0.05) -> None:
    """Wait until `check()` holds; TimeoutError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise TimeoutError(f"the condition did not hold within {within} s")
        await asyncio.sleep(every)


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


# ---- in process ------------------------------------------------------------------------------


async def test_the_delivery_counts_telegram_errors_by_kind_and_its_retries() -> None:
    session = RecordingSession()
    bot = Bot("42:TEST", session=session)
    metrics = Metrics()
    delivery = Delivery(DeliveryPolicy(attempts=4, urgent_for=5.0, backoff=FAST), LogEscalations())
    delivery.metrics = metrics
    session.fail(SendMessage, 500, 502, TIMEOUT)
    assert await delivery.send_text(bot, 7, "hello") is not None  # three failures, then sent
    session.fail(SendMessage, 400)
    assert await delivery.send_text(bot, 7, "hello") is None  # a 400 is not retried
    session.fail(SendMessage, 403)
    with pytest.raises(PatientUnreachableError):
        await delivery.send_text(bot, 7, "hello")
    samples = parse(metrics.render().decode())
    assert value(samples, "wenzhen_telegram_errors_total", kind="server") == 2
    assert value(samples, "wenzhen_telegram_errors_total", kind="network") == 1
    assert value(samples, "wenzhen_telegram_errors_total", kind="bad_request") == 1
    assert value(samples, "wenzhen_telegram_errors_total", kind="forbidden") == 1
    assert value(samples, "wenzhen_telegram_retries_total") == 3


async def test_levels_red_flags_crisis_and_escalations_are_counted_once_per_event(
    test_rules: RuleSet,
) -> None:
    from dialog.events import Inbound

    service = ConsultationService(test_rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    metrics = Metrics()

    async def say(patient: str, text: str) -> None:
        metrics.observe_actions(await service.handle(Inbound(patient_id=patient, kind="text", text=text)))

    await say("p1", "chest pain and sweating")
    await say("p1", "chest pain and sweating")  # the same flag again: a follow-up, no new event
    await say("p2", "I want to kill myself")
    samples = parse(metrics.render().decode())
    assert value(samples, "wenzhen_red_flags_total", flag="chest_pain_sweating") == 1
    assert value(samples, "wenzhen_red_flags_total", flag="suicidal") == 1
    assert value(samples, "wenzhen_crisis_total") == 1
    assert value(samples, "wenzhen_escalations_total", reason="red_flag") == 1
    assert value(samples, "wenzhen_escalations_total", reason="crisis") == 1
    assert value(samples, "wenzhen_levels_total", level="emergency_ambulance") == 1
    assert value(samples, "wenzhen_levels_total", level="emergency") == 1


class Harness:
    """The wired dispatcher (as `serve` wires it) over a recording session."""

    def __init__(self, service: ConsultationService, phraser: AssistantPhraser | None, redis: Redis) -> None:
        self.session = RecordingSession()
        self.bot = Bot("42:TEST", session=self.session)
        self.delivery = Delivery(DeliveryPolicy(backoff=FAST, typing_after=5.0), LogEscalations())
        self.dispatcher = create_dispatcher(
            service, options=TelegramOptions(set_commands=False), delivery=self.delivery
        )
        self.probes = Probes.wire(
            self.dispatcher, redis=redis, service=service, delivery=self.delivery, phraser=phraser
        )

    async def feed(self, update: dict[str, Any]) -> list[SendMessage]:
        before = len(self.session.sent())
        await self.dispatcher.feed_update(self.bot, Update.model_validate(update, context={"bot": self.bot}))
        return self.session.sent()[before:]

    def samples(self) -> Samples:
        return parse(self.probes.metrics.render().decode())


async def test_turns_latency_guard_queue_and_fallbacks_through_the_wired_dispatcher(
    test_rules: RuleSet, redis: Redis
) -> None:
    # a diagnosis: the guard refuses it for the advice; no question mark: no rewording of a question
    backend = FakeBackend(default="Rest and drink fluids. You have flu.")
    queue = GenerationQueue(backend)
    try:
        phraser = AssistantPhraser(Assistant(queue, phrase_deadline_s=5))
        service = ConsultationService(
            test_rules, MemoryStore(), REGIONS["cn"], default_lang="en", phraser=phraser
        )
        harness = Harness(service, phraser, redis)
        user = random.randint(10**8, 10**9)
        steps: list[tuple[str, str]] = [
            ("say", "I have had a fever since yesterday"),
            ("tap", "consent:yes"),
            ("tap", "who:self"),
            ("say", "34"),
            ("tap", "sex:F"),
            ("tap", "a:stiff_neck:no"),
            ("tap", "a:drinking:normal"),
            ("tap", "open:none"),
        ]
        got: list[SendMessage] = []
        for action, text in steps:
            if action == "say":
                got = await harness.feed(updates.message(user, text))
            else:
                got = await harness.feed(updates.tap(user, text, message_id=1))
        assert "You have flu" not in got[-1].text  # the guard refused it: the template went out
        assert "Rest and drink fluids." in got[-1].text
        await harness.feed(updates.message(-5, "chest pain", chat_type="group", chat_id=-100))
        samples = harness.samples()
    finally:
        await queue.aclose()
    assert value(samples, "wenzhen_turns_total", kind="message") == 2  # the group is not a turn
    assert value(samples, "wenzhen_turns_total", kind="callback_query") == 6
    assert value(samples, "wenzhen_turn_seconds_count", kind="callback_query") == 6
    assert value(samples, "wenzhen_levels_total", level="self_care") == 1
    assert value(samples, "wenzhen_guard_decisions_total", decision="diagnosis") == 1
    assert value(samples, "wenzhen_template_fallbacks_total", reason="guard") == 1
    assert value(samples, "wenzhen_template_fallbacks_total", reason="no_model_text") >= 1
    assert value(samples, "wenzhen_generation_started_total") >= 1
    assert value(samples, "wenzhen_generation_outcomes_total", outcome="ok") >= 1
    assert ("wenzhen_generation_queue_depth", frozenset()) in samples
    assert value(samples, "wenzhen_model_circuit_open") == 0


async def test_readyz_is_503_when_redis_is_unreachable_or_the_model_circuit_is_open(
    test_rules: RuleSet, redis: Redis
) -> None:
    async def failing(backend: object) -> str:
        raise RuntimeError("the GPU fell off")

    queue = GenerationQueue(FakeBackend(), breaker=CircuitBreaker(failures=1, cooldown=600))
    service = ConsultationService(test_rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    metrics = Metrics()
    metrics.watch(guard=service.guard, queue=queue)
    dead = Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=1, socket_timeout=1)
    port = free_port()

    async def get(path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}{path}") as answer:
            return answer.status, await answer.text()

    try:
        probes = Probes(redis=redis, service=service, metrics=metrics, queue=queue)
        async with serve_probes("127.0.0.1", port, probes):
            assert await get("/healthz") == (200, "ok")
            status, body = await get("/readyz")
            assert status == 200, body
            checks = {"redis": "ok", "rules": "ok", "model": "ok"}
            assert json.loads(body) == {"ready": True, "checks": checks}
            await queue.submit(failing, deadline_s=5)  # one failure opens this breaker
            status, body = await get("/readyz")
            assert status == 503
            assert json.loads(body)["checks"]["model"] == "circuit open"
            assert value(parse((await get("/metrics"))[1]), "wenzhen_model_circuit_open") == 1
        probes = Probes(redis=dead, service=service, metrics=metrics)
        async with serve_probes("127.0.0.1", port, probes):
            status, body = await get("/readyz")
            assert status == 503
            assert json.loads(body)["checks"]["redis"].startswith("unreachable")
            assert await get("/healthz") == (200, "ok")  # alive all the same
    finally:
        await queue.aclose()
        await dead.aclose()


async def test_a_port_in_use_leaves_the_bot_running_without_probes(
    test_rules: RuleSet, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    service = ConsultationService(test_rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    probes = Probes(redis=redis, service=service, metrics=Metrics())
    port = free_port()
    async with serve_probes("127.0.0.1", port, probes) as first:
        assert first is not None
        with caplog.at_level(logging.WARNING):
            async with serve_probes("127.0.0.1", port, probes) as second:
                assert second is None
    assert any("not served" in r.getMessage() for r in caplog.records)


def test_json_log_lines_carry_level_logger_message_and_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("wenzhen.x", logging.ERROR, __file__, 1, "turn %s failed", ("ab12",), None)
        record.exc_info = sys.exc_info()
    record.case_id = "c-1"
    line = json.loads(formatter.format(record))
    assert line["level"] == "ERROR"
    assert line["logger"] == "wenzhen.x"
    assert line["msg"] == "turn ab12 failed"
    assert line["exc_type"] == "ValueError"
    assert "Traceback" in line["exc"]
    assert line["case_id"] == "c-1"


# ---- the real process ------------------------------------------------------------------------

pytestmark_e2e = pytest.mark.asyncio(loop_scope="module")

SECRET_WORDS = "zebracrossing"  # in every message a patient sends below; must never be logged


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = EmbeddedRedis(tmp_path_factory.mktemp("own-redis"))
    yield server
    server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI("700011:TEST-metrics") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def serving(
    api: FakeBotAPI, tmp_path_factory: pytest.TempPathFactory, own_redis: EmbeddedRedis
) -> AsyncIterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("metrics-bot")
    rules = fixture_rules_dir(workdir)
    bot = BotProcess(api, workdir=workdir, redis_url=own_redis.url, rules_dir=rules)
    await bot.start()
    yield bot
    await bot.stop()


async def scrape(bot: BotProcess, path: str = "/metrics") -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.get(bot.probe_url + path) as answer:
        return answer.status, await answer.text()


@pytestmark_e2e
async def test_serve_counts_an_emergency_and_a_consultation(serving: BotProcess, api: FakeBotAPI) -> None:
    assert await scrape(serving, "/healthz") == (200, "ok")
    status, body = await scrape(serving, "/readyz")
    assert status == 200, body
    before = parse((await scrape(serving))[1])

    alarmed = api.user(random.randint(10**8, 10**9))
    await alarmed.say(f"chest pain and sweating {SECRET_WORDS}", until=says("120"))
    user = api.user(random.randint(10**8, 10**9))
    await user.say(f"I have had a fever since yesterday {SECRET_WORDS}", until=offers("consent:yes"))
    await user.tap("consent:yes", until=offers("who:self"))
    await user.tap("who:self", until=says("How old"))
    await user.say("34", until=offers("sex:F"))
    await user.tap("sex:F", until=offers("a:stiff_neck:no"))
    await user.tap("a:stiff_neck:no", until=offers("a:drinking:normal"))
    await user.say(f"as usual {SECRET_WORDS}", until=offers("open:none"))
    await user.tap("open:none", until=says("Rest and drink fluids."))

    after: Samples = {}

    async def counted() -> bool:
        nonlocal after
        after = parse((await scrape(serving))[1])
        turns = sum(
            value(after, "wenzhen_turns_total", kind=kind) - value(before, "wenzhen_turns_total", kind=kind)
            for kind in ("message", "callback_query")
        )
        return turns >= 9

    await until(counted)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("wenzhen_turns_total", kind="message") == 4
    assert moved("wenzhen_turns_total", kind="callback_query") == 5
    assert moved("wenzhen_turn_seconds_count", kind="message") == 4
    assert moved("wenzhen_levels_total", level="emergency_ambulance") == 1
    assert moved("wenzhen_levels_total", level="self_care") == 1
    assert moved("wenzhen_red_flags_total", flag="chest_pain_sweating") == 1
    assert moved("wenzhen_escalations_total", reason="red_flag") == 1
    assert moved("wenzhen_crisis_total") == 0
    assert ("wenzhen_guard_decisions_total", frozenset()) not in after  # families present, no model
    assert value(after, "wenzhen_template_fallbacks_total", reason="guard") == 0


@pytestmark_e2e
async def test_serve_logs_json_lines_without_patient_text(serving: BotProcess) -> None:
    lines = [line for line in serving.log().splitlines() if line.strip() and not line.startswith("---- ")]
    assert lines
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in parsed)
    assert any(entry["logger"] == "aiogram.event" for entry in parsed)  # the updates were logged
    assert SECRET_WORDS not in serving.log()
    assert "Traceback" not in serving.log()
    assert "chest pain" not in serving.log()


@pytestmark_e2e
async def test_serve_readyz_goes_503_when_redis_is_gone_yet_emergencies_are_answered(
    serving: BotProcess, api: FakeBotAPI, own_redis: EmbeddedRedis
) -> None:
    own_redis.close()  # Redis stops

    async def unready() -> bool:
        status, body = await scrape(serving, "/readyz")
        return status == 503 and json.loads(body)["checks"]["redis"].startswith("unreachable")

    await until(unready)
    assert await scrape(serving, "/healthz") == (200, "ok")
    user = api.user(random.randint(10**8, 10**9))
    await user.say("chest pain and sweating", until=says("120"), within=30)
    # its Redis gone, the bot takes longer to stop (its clients retry): give it the time here
    assert await serving.stop(within=60) == 0, serving.log()
