"""End to end over real HTTP: the real bot process (`wenzhen serve`) against a fake Bot API
server started here, on Redis (REDIS_URL, or the embedded server), with the engine-test
protocols. Every wait is on a condition, with a timeout."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from storage.redis_store import RedisStore
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.fake_api import SECRET_HEADER, FakeBotAPI, FakeUser, offers, says
from tests.telegram_fixtures.process import WENZHEN, BotProcess, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_rules_dir(tmp_path_factory.mktemp("rules"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI("700001:TEST-polling") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def polling_bot(
    api: FakeBotAPI, tmp_path_factory: pytest.TempPathFactory, redis_url: str, rules_dir: Path
) -> AsyncIterator[BotProcess]:
    # a slow refill, so that the flood test's burst is one burst however busy this machine is
    env = {"WENZHEN_TELEGRAM_THROTTLE_RATE": "0.05"}
    workdir = tmp_path_factory.mktemp("polling")
    bot = BotProcess(api, workdir=workdir, redis_url=redis_url, rules_dir=rules_dir, env=env)
    await bot.start()
    yield bot
    assert await bot.stop() == 0, bot.log()
    assert "Traceback" not in bot.log(), bot.log()


def new_user(api: FakeBotAPI, lang: str = "en") -> FakeUser:
    return api.user(random.randint(10**8, 10**9), lang)


async def english_consultation_until_the_neck_question(user: FakeUser) -> None:
    got = await user.say("I have had a fever since yesterday", until=offers("consent:yes"))
    assert "I am not a doctor" in got[-1].text
    await user.tap("consent:yes", until=offers("who:self"))
    await user.tap("who:self", until=says("How old"))
    await user.say("34", until=offers("sex:F"))


async def test_polling_a_whole_consultation_in_english(polling_bot: BotProcess, api: FakeBotAPI) -> None:
    user = new_user(api)
    await english_consultation_until_the_neck_question(user)
    got = await user.tap("sex:F", until=offers("a:stiff_neck:no"))
    assert got[-1].buttons == [
        [("Yes", "a:stiff_neck:yes"), ("No", "a:stiff_neck:no"), ("Not sure", "a:stiff_neck:unsure")]
    ]
    await user.tap("a:stiff_neck:no", until=offers("a:drinking:normal"))
    await user.say("as usual", until=offers("open:none"))
    advice = await user.tap("open:none", until=says("Rest and drink fluids."))
    assert "not a diagnosis" in advice[-1].text
    # each tapped keyboard was removed, so no old question can be answered twice
    assert all(not m.buttons for m in api.sent_to(user.user_id))


async def test_polling_a_whole_consultation_in_chinese(polling_bot: BotProcess, api: FakeBotAPI) -> None:
    user = new_user(api, "zh-hans")
    got = await user.say("孩子发烧三天了，烧到39度", until=offers("consent:yes"))
    assert "我不是医生" in got[-1].text
    await user.tap("consent:yes", until=says("多大"))
    await user.say("两岁", until=offers("sex:M"))
    await user.tap("sex:M", until=says("脖子发硬吗"))
    await user.say("没有", until=says("喝水怎么样"))
    await user.say("比平时少", until=offers("open:none"))
    got = await user.say("没有了", until=says("今天看医生"))
    assert "24小时内就医" in got[-1].text


async def test_polling_the_emergency_path(polling_bot: BotProcess, api: FakeBotAPI) -> None:
    user = new_user(api)
    # an emergency is answered even before consent, without a question first
    got = await user.say("my husband is unconscious and won't wake up", until=says("120"))
    assert "emergency" in got[-1].text.lower()
    later = new_user(api)
    await english_consultation_until_the_neck_question(later)
    await later.tap("sex:F", until=offers("a:stiff_neck:yes"))
    got = await later.tap("a:stiff_neck:yes", until=says("120"))  # fever with a stiff neck
    assert "meningitis" in got[-1].text.lower()


async def test_polling_consent_decline_and_forget(
    polling_bot: BotProcess, api: FakeBotAPI, redis_url: str
) -> None:
    user = new_user(api)
    await user.say("I have a cough", until=offers("consent:no"))
    await user.tap("consent:no", until=says("I have not kept anything"))
    await user.command("start", until=offers("consent:yes"))
    await user.tap("consent:yes", until=offers("who:self"))
    redis = Redis.from_url(redis_url)
    try:
        store = RedisStore(redis)
        assert await store.load(f"tg:{user.user_id}") is not None
        await user.command("forget", until=offers("forget:yes"))
        await user.tap("forget:yes", until=says("deleted"))
        assert await store.load(f"tg:{user.user_id}") is None
    finally:
        await redis.aclose()


async def test_polling_media_groups_and_floods(polling_bot: BotProcess, api: FakeBotAPI) -> None:
    user = new_user(api)
    await user.send(updates.message(user.user_id, "chest pain and sweating", chat_type="group", chat_id=-42))
    await user.send(updates.media(user.user_id, "voice"))
    await api.wait_for(lambda: any("only read text" in m.text for m in api.sent_to(user.user_id)))
    assert api.sent_to(-42) == []
    flood = new_user(api)
    for n in range(10):
        await flood.send(updates.message(flood.user_id, f"hello {n}"))
    await flood.send(updates.message(flood.user_id, "chest pain and sweating"))
    await api.wait_for(
        lambda: any("120" in m.text and "emergency" in m.text.lower() for m in api.sent_to(flood.user_id))
    )
    await api.wait_for(lambda: any("faster than I can read" in m.text for m in api.sent_to(flood.user_id)))
    notices = [m for m in api.sent_to(flood.user_id) if "faster than I can read" in m.text]
    assert len(notices) == 1


async def test_polling_survives_telegram_faults(polling_bot: BotProcess, api: FakeBotAPI) -> None:
    # an emergency reply through 429 (retry after 1 s), a 502 and a timeout
    user = new_user(api)
    api.fail("sendMessage", 429, 502, 4.0, chat_id=user.user_id)
    started = time.monotonic()
    got = await user.say("he is unconscious", until=says("120"), within=30)
    assert time.monotonic() - started > 4  # it waited out the 429 and the timeout (3 s)
    assert got
    assert _statuses(api, user.user_id) == [429, 502, 408, 200]
    # a patient who blocked the bot is dropped quietly; others are still served
    blocked = new_user(api)
    api.block(blocked.user_id)
    await blocked.send(updates.message(blocked.user_id, "/help"))
    await api.wait_for(
        lambda: any(
            c.status == 403
            for c in api.calls_of("sendMessage")
            if c.params.get("chat_id") == str(blocked.user_id)
        )
    )
    await new_user(api).command("help", until=says("/restart"))
    assert "Traceback" not in polling_bot.log()


# ---- a restart mid-consultation ---------------------------------------------------------------


async def test_a_restarted_bot_resumes_each_consultation_where_it_was(
    tmp_path: Path, redis_url: str, rules_dir: Path
) -> None:
    async with FakeBotAPI("700002:TEST-restart") as api:
        # A process killed while it holds a patient's lock frees it after the lock's TTL.
        env = {"WENZHEN_TELEGRAM_LOCK_TIMEOUT": "2"}
        bot = BotProcess(api, workdir=tmp_path, redis_url=redis_url, rules_dir=rules_dir, env=env)
        await bot.start()
        try:
            user = new_user(api)
            await english_consultation_until_the_neck_question(user)
            await bot.kill()  # SIGKILL right after the reply: no clean shutdown
            got_before = len(api.sent_to(user.user_id))
            await bot.start()
            await user.tap("sex:F", until=offers("a:stiff_neck:no"))  # the very next step
            await user.tap("a:stiff_neck:no", until=offers("a:drinking:normal"))
            await bot.stop()
            await bot.start()  # and a clean restart too
            await user.tap("a:drinking:normal", until=offers("open:none"))
            await user.tap("open:none", until=says("Rest and drink fluids."))
            resumed = api.sent_to(user.user_id)[got_before:]
            assert not any(data.startswith("consent") for m in resumed for data in m.data)
        finally:
            await bot.stop()
        assert "Traceback" not in bot.log(), bot.log()


def _statuses(api: FakeBotAPI, chat_id: int) -> list[int]:
    return [c.status for c in api.calls_of("sendMessage") if c.params.get("chat_id") == str(chat_id)]


def _refused(api: FakeBotAPI, chat_id: int) -> bool:
    return any(
        c.status == 403 and c.params.get("chat_id") == str(chat_id) for c in api.calls_of("sendMessage")
    )


# ---- webhook mode ----------------------------------------------------------------------------


async def test_webhook_mode_checks_the_secret_and_serves_consultations(
    tmp_path: Path, redis_url: str, rules_dir: Path
) -> None:
    async with FakeBotAPI("700003:TEST-webhook") as api:
        bot = BotProcess(
            api, workdir=tmp_path, redis_url=redis_url, rules_dir=rules_dir, webhook_port=free_port()
        )
        bot.command = [str(WENZHEN)]  # the bare command serves Telegram when a token is set
        await bot.start()
        try:
            assert api.webhook_url == bot.webhook_url
            assert api.webhook_secret
            assert await bot.healthy()
            async with aiohttp.ClientSession() as client:
                forged = updates.message(5, "/start")
                for headers in ({}, {SECRET_HEADER: "wrong"}):
                    async with client.post(bot.webhook_url, json=forged, headers=headers) as response:
                        assert response.status == 401
            assert api.sent_to(5) == []

            user = new_user(api)
            await user.command("start", until=offers("consent:yes"))
            await user.tap("consent:yes", until=offers("who:self"))
            await user.tap("who:self", until=says("How old"))
            await user.say("40", until=offers("sex:M"))
            await user.tap("sex:M", until=says("main problem"))
            await user.say("I have a cough", until=offers("a:cough_weeks:no"))
            await user.tap("a:cough_weeks:no", until=offers("open:none"))
            await user.tap("open:none", until=says("Honey and rest."))

            other = new_user(api, "zh")
            got = await other.say("胸痛，一直出冷汗", until=says("120"))
            assert "急救" in got[-1].text or "120" in got[-1].text
        finally:
            assert await bot.stop() == 0
        assert "Traceback" not in bot.log(), bot.log()
