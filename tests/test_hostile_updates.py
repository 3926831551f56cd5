"""Hostile and random updates through the dispatcher (tests/telegram_fixtures/hostile.py): a
seeded sample here, on memory and on Redis; the full 100,000 in benchmarks/fuzz_updates.py.

Each update is checked: no exception escapes, nothing is logged at ERROR, every private text,
command and media message gets an answer and every tap is answered, nothing goes to a group or
a channel, and no message is empty, too long, or shows a stack trace or a raw placeholder.
"""

from __future__ import annotations

from pathlib import Path

from aiogram import Bot
from aiogram.types import Update
from redis.asyncio import Redis

from bot.telegram import TelegramOptions, create_dispatcher
from dialog.ruleset import load_rules
from dialog.service import ConsultationService
from safety import REGIONS
from storage.memory import MemoryStore
from storage.redis_store import RedisStore
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.hostile import fuzz, summary
from tests.telegram_fixtures.recording import RecordingSession


async def test_random_and_malformed_updates_on_memory(tmp_path: Path) -> None:
    report = await fuzz(4000, seed=20240601, store=MemoryStore(), tmp=tmp_path)
    assert report.count == 4000
    assert report.kinds["private_text"] > 1500
    assert report.kinds["private_tap"] > 500
    assert report.sent > report.kinds["private_text"]
    assert not report.failures, summary(report)


async def test_random_and_malformed_updates_on_redis(tmp_path: Path, redis: Redis, key_prefix: str) -> None:
    store = RedisStore(redis, prefix=key_prefix)
    try:
        report = await fuzz(800, seed=7, store=store, tmp=tmp_path, redis=redis)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
        if keys:
            await redis.delete(*keys)
    assert not report.failures, summary(report)


async def test_a_lone_slash_is_read_as_text_not_a_crash(tmp_path: Path) -> None:
    """Found by the fuzzer: "/" marked as a bot command raised IndexError in the patient router
    and again in its safety net, so the update escaped unanswered."""
    service = ConsultationService(
        load_rules(fixture_rules_dir(tmp_path)), MemoryStore(), REGIONS["cn"], default_lang="en"
    )
    session = RecordingSession()
    bot = Bot("42:TEST", session=session)
    dispatcher = create_dispatcher(service, options=TelegramOptions(set_commands=False))
    update = updates.message(5150, "/")
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 1}]
    await dispatcher.feed_update(bot, Update.model_validate(update, context={"bot": bot}))
    assert session.sent()
    assert "temporary problem" not in session.sent()[-1].text
