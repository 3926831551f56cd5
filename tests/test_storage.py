"""Consultations in real Redis: resume after a restart, /forget deletes everything, and the
safety path works with Redis down."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.store import StoreUnavailableError
from safety import REGIONS, Level
from storage.redis_store import RedisStore
from tests.helpers import Chat, fixture_rules_dir


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


def _service(rules: RuleSet, store: RedisStore) -> ConsultationService:
    return ConsultationService(rules, store, REGIONS["cn"], default_lang="en")


async def test_a_restarted_process_resumes_at_the_same_step(
    test_rules: RuleSet, redis_url: str, key_prefix: str
) -> None:
    first_client = Redis.from_url(redis_url)
    chat = Chat(_service(test_rules, RedisStore(first_client, prefix=key_prefix)))
    await chat.say("fever for 2 days")
    await chat.tap("consent:yes")
    await chat.tap("who:self")
    await chat.say("41")
    await chat.tap("sex:M")
    pending = chat.last.expect
    assert pending.question_id == "stiff_neck"
    await first_client.aclose()  # the process goes away

    second_client = Redis.from_url(redis_url)
    try:
        resumed = Chat(_service(test_rules, RedisStore(second_client, prefix=key_prefix)))
        replies = await resumed.command("resume")
        assert replies[-1].expect == pending
        await resumed.tap("a:stiff_neck:no")
        await resumed.tap("a:drinking:normal")
        await resumed.tap("open:none")
        assert resumed.last.triage is not None
        assert resumed.last.triage.level is Level.SELF_CARE
        asked = chat.asked() + resumed.asked()
        assert asked.count("stiff_neck") == 2  # once before the restart, once to resume
        assert "fever_days" not in asked
    finally:
        keys = [k async for k in second_client.scan_iter(match=f"{key_prefix}*")]
        if keys:
            await second_client.delete(*keys)
        await second_client.aclose()


async def test_forget_leaves_nothing_of_the_patient_in_redis(
    test_rules: RuleSet, redis: Redis, redis_store: RedisStore, key_prefix: str
) -> None:
    chat = Chat(_service(test_rules, redis_store), patient_id="tg:4242")
    await chat.say("chest pain and sweating")  # an escalation, a case
    await chat.command("restart")
    await chat.say("fever")
    other = Chat(_service(test_rules, redis_store), patient_id="tg:7")
    await other.say("crushing chest pain, sweating")
    await chat.command("forget")
    assert chat.last.expect.kind == "forget"
    await chat.tap("forget:yes")
    assert "deleted" in chat.last.text
    leftovers = []
    async for key in redis.scan_iter(match=f"{key_prefix}*"):
        kind = await redis.type(key)
        if kind == b"string":
            value = await redis.get(key)
        elif kind == b"set":
            value = b" ".join(await redis.smembers(key))
        else:
            value = b" ".join(str(entry).encode() for entry in await redis.xrange(key))
        if b"tg:4242" in (value or b"") or b"tg:4242" in key:
            leftovers.append(key)
    assert leftovers == []
    assert [e.patient_id for e in await redis_store.escalations()] == ["tg:7"]


async def test_forget_can_be_cancelled(test_rules: RuleSet, redis_store: RedisStore) -> None:
    chat = Chat(_service(test_rules, redis_store))
    await chat.say("fever")
    await chat.tap("consent:yes")
    await chat.command("forget")
    await chat.tap("forget:no")
    assert await redis_store.load(chat.patient_id) is not None


async def test_with_redis_down_emergencies_still_go_out(test_rules: RuleSet) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        chat = Chat(_service(test_rules, RedisStore(dead)))
        emergency = await chat.say("my husband is unconscious and won't wake up")
        assert emergency[0].purpose == "emergency"
        assert "120" in emergency[0].text
        ordinary = await chat.say("I have a mild cough")
        assert ordinary[0].purpose == "error"
        assert "temporary problem" in ordinary[0].text
    finally:
        await dead.aclose()


def test_embedded_redis_persists_to_the_data_directory(tmp_path: Path) -> None:
    import redis as sync_redis

    from storage.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    client = sync_redis.Redis(unix_socket_path=server.socket)
    client.set("wz:probe", "kept")
    client.close()
    server.close()
    again = EmbeddedRedis(tmp_path)
    try:
        client = sync_redis.Redis(unix_socket_path=again.socket)
        assert client.get("wz:probe") == b"kept"
        client.close()
    finally:
        again.close()


class _Outage:
    """The real Redis store, except that while `down` every call fails as an outage does."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> object:
        method = getattr(self.store, name)

        async def call(*args: object, **kwargs: object) -> object:
            if self.down:
                raise StoreUnavailableError("redis is down")
            return await method(*args, **kwargs)

        return call


async def test_an_emergency_answered_during_an_outage_is_written_into_the_case_afterwards(
    test_rules: RuleSet, redis_store: RedisStore
) -> None:
    outage = _Outage(redis_store)
    service = _service(test_rules, outage)  # type: ignore[arg-type]
    chat = Chat(service, patient_id="outage-1")
    await chat.say("I have had a fever since yesterday")
    await chat.tap("consent:yes")
    outage.down = True
    emergency = await chat.say("my husband is unconscious and won't wake up")
    assert emergency[0].purpose == "emergency"
    outage.down = False
    await chat.say("what should I do")
    session = await redis_store.load("outage-1")
    assert session is not None
    assert session.case is not None
    assert session.state.value == "emergency"
    assert "unconscious" in session.case.red_flags
    assert any("won't wake up" in turn.text for turn in session.case.transcript)
    assert session.case.escalated  # the escalation it raised is known: it is not raised again


async def test_a_doctor_can_take_a_case_flagged_while_storage_was_down(
    test_rules: RuleSet, redis_store: RedisStore
) -> None:
    outage = _Outage(redis_store)
    service = _service(test_rules, outage)  # type: ignore[arg-type]
    outage.down = True
    chat = Chat(service, patient_id="outage-2")
    await chat.say("my husband is unconscious and won't wake up")  # a first message, never stored
    outage.down = False
    joined = await service.doctor_joined("outage-2", "Dr Li")
    assert "Dr Li" in joined[0].text  # type: ignore[union-attr]
    session = await redis_store.load("outage-2")
    assert session is not None
    assert session.state.value == "handoff"
    assert session.case is not None
    assert "unconscious" in session.case.red_flags
