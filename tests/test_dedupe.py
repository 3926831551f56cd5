"""Each update handled once (bot/telegram/dedupe.py), through the real dispatcher and consultation
service over a recording Bot API session: on real Redis and in memory, duplicates delivered one
after the other and at the same time; and the journal a dead process leaves behind: fed again in
update order, its recorded answer sent without consulting twice, a poisonous update given up.
The end-to-end versions (a redelivery to the real process, SIGKILL mid-consultation) are in
test_resilience_e2e.py."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from redis.asyncio import Redis

from bot.telegram import TelegramOptions, create_dispatcher
from bot.telegram.dedupe import DONE_TTL, MAX_REPLAYS, Dedupe, key_prefix
from dialog.events import Inbound, Outbound, Reply
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from safety import REGIONS
from storage.redis_store import RedisStore
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.recording import RecordingSession


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


class Counting(ConsultationService):
    """The real service, counting (and optionally slowing) the turns it is asked for."""

    def __init__(self, rules: RuleSet, store: RedisStore) -> None:
        super().__init__(rules, store, REGIONS["cn"], default_lang="en")
        self.turns: list[Inbound] = []
        self.delay = 0.0

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        self.turns.append(inbound)
        await asyncio.sleep(self.delay)
        return await super().handle(inbound)


@pytest.fixture
def bot() -> Bot:
    return Bot(f"{random.randint(10**6, 10**7)}:TEST", session=RecordingSession())


@pytest.fixture
async def cleanup(redis: Redis, bot: Bot) -> AsyncIterator[None]:
    yield
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix(bot.id)}*")]
    keys += [key async for key in redis.scan_iter(match=f"wz:tg:{bot.id}:*")]
    if keys:
        await redis.delete(*keys)


def _dispatcher(service: ConsultationService, redis: Redis | None) -> Dispatcher:
    options = TelegramOptions(lock_timeout=2.0, set_commands=False)
    return create_dispatcher(service, redis=redis, options=options)


async def _feed(dispatcher: Dispatcher, bot: Bot, update: dict[str, Any]) -> None:
    await dispatcher.feed_update(bot, Update.model_validate(update, context={"bot": bot}))


def _sent(bot: Bot) -> list[str]:
    assert isinstance(bot.session, RecordingSession)
    return [m.text for m in bot.session.sent()]


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "memory"])
async def test_an_update_delivered_again_is_not_handled_again(
    test_rules: RuleSet, redis_store: RedisStore, redis: Redis, bot: Bot, cleanup: None, with_redis: bool
) -> None:
    service = Counting(test_rules, redis_store)
    dispatcher = _dispatcher(service, redis if with_redis else None)
    update = updates.message(11, "I have had a fever since yesterday")
    await _feed(dispatcher, bot, update)
    replies = len(_sent(bot))
    assert replies > 0
    await _feed(dispatcher, bot, update)  # after it was handled
    service.delay = 0.3
    second = updates.message(11, "/help")
    await asyncio.gather(_feed(dispatcher, bot, second), _feed(dispatcher, bot, second))  # at once
    assert [turn.update_id for turn in service.turns] == [update["update_id"], second["update_id"]]
    if with_redis:
        mark = f"{key_prefix(bot.id)}update:{update['update_id']}"
        assert await redis.get(mark) == b"done"
        assert DONE_TTL - 60 < await redis.ttl(mark) <= DONE_TTL
        assert await redis.hlen(f"{key_prefix(bot.id)}journal") == 0  # nothing left in hand


def test_the_memory_set_is_bounded() -> None:
    dedupe = Dedupe(None, kept=100)
    bot = Bot("42:TEST", session=RecordingSession())
    for update_id in range(1000):
        asyncio.run(dedupe._take_here(bot, Update(update_id=update_id)))
    assert len(dedupe._seen) == 100


async def _orphan(
    redis: Redis, bot: Bot, update: dict[str, Any], answer: list[Outbound] | None = None
) -> None:
    """What a process killed while handling `update` leaves: a journal entry, a lapsed claim."""
    journal = f"{key_prefix(bot.id)}journal"
    await redis.hset(journal, str(update["update_id"]), json.dumps(update))
    if answer is not None:
        from pydantic import TypeAdapter

        recorded = TypeAdapter(list[Outbound]).dump_json(answer).decode()
        await redis.hset(journal, f"{update['update_id']}:out", recorded)


async def test_a_dead_processs_updates_are_fed_again_in_order_and_answered_once(
    test_rules: RuleSet, redis_store: RedisStore, redis: Redis, bot: Bot, cleanup: None
) -> None:
    service = Counting(test_rules, redis_store)
    dispatcher = _dispatcher(service, redis)
    dedupe: Dedupe = dispatcher["dedupe"]
    prefix = key_prefix(bot.id)

    # patient 21: the dead process had worked out the answer to this one, but not sent it
    worked_out = updates.message(21, "I have had a fever since yesterday")
    await _orphan(redis, bot, worked_out, [Reply(text="the answer kept in the journal", lang="en")])
    # patient 22: two messages; the first is still in another (live) process's hands
    first, second = updates.message(22, "/help"), updates.message(22, "/start")
    await _orphan(redis, bot, first)
    await _orphan(redis, bot, second)
    await redis.set(f"{prefix}update:{first['update_id']}", "another-process", px=60_000)

    assert await dedupe.recover(bot, dispatcher) == 1  # 22's second waits for its first
    await asyncio.gather(*dedupe._replays)
    assert _sent(bot) == ["the answer kept in the journal"]  # sent again, not consulted again
    assert service.turns == []

    await redis.delete(f"{prefix}update:{first['update_id']}")  # that process died too
    assert await dedupe.recover(bot, dispatcher) == 2
    await asyncio.gather(*dedupe._replays)
    assert [turn.command for turn in service.turns] == ["help", "start"]  # in their order
    assert await redis.hlen(f"{prefix}journal") == 0
    assert await dedupe.recover(bot, dispatcher) == 0


async def test_an_update_that_never_finishes_is_given_up(
    test_rules: RuleSet,
    redis_store: RedisStore,
    redis: Redis,
    bot: Bot,
    cleanup: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Counting(test_rules, redis_store)
    dispatcher = _dispatcher(service, redis)
    poison = updates.message(31, "/help")
    await _orphan(redis, bot, poison)
    await redis.hset(f"{key_prefix(bot.id)}journal", f"{poison['update_id']}:tries", MAX_REPLAYS)
    with caplog.at_level(logging.ERROR):
        assert await dispatcher["dedupe"].recover(bot, dispatcher) == 0
    assert "given up" in caplog.text
    assert await redis.hlen(f"{key_prefix(bot.id)}journal") == 0
    assert await redis.get(f"{key_prefix(bot.id)}update:{poison['update_id']}") == b"done"
    assert service.turns == []
