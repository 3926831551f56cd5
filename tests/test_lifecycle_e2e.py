"""A patient's data from first message to /forget, end to end: the real bot process (`wenzhen
serve`) with a doctor team, against the fake Bot API server, on a Redis server of this module's
own (so every key in it can be read). A flagged case is claimed, talked through and closed by a
doctor, with audit entries; `wenzhen cases export` writes it out for the clinic's records; after
/forget no key and no value anywhere in Redis names the patient or any of their cases. Crafted
button data from one patient cannot reach another's case. Every wait is on a condition, with a
timeout."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from bot.telegram.dedupe import key_prefix
from dialog.team import Member, Role, TicketStatus, patient_alias
from storage.export import CaseExport
from storage.team_board import TeamBoard
from tests.helpers import fixture_rules_dir
from tests.redis_server import RedisServer
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.fake_api import FakeBotAPI, FakeUser, offers, says
from tests.telegram_fixtures.process import BotProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")

WENZHEN = Path(sys.executable).parent / "wenzhen"
GROUP = -100_888
DOCTOR, STRANGER = 9101, 9199
TEAM = {
    "name": "west",
    "chat_id": GROUP,
    "lang": "en",
    "members": [{"id": "li", "name": "Dr Li", "role": "doctor", "telegram_id": DOCTOR}],
}
OPS = Member(id="ops", name="Ops", role=Role.OPERATOR)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    await redis_server.start()
    yield redis_server
    await redis_server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI("700201:TEST-lifecycle") as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def team_bot(
    api: FakeBotAPI, server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotProcess]:
    rules_dir = fixture_rules_dir(tmp_path_factory.mktemp("rules"))
    env = {"WENZHEN_TEAMS": json.dumps([TEAM])}
    bot = BotProcess(
        api, workdir=tmp_path_factory.mktemp("bot"), redis_url=server.url, rules_dir=rules_dir, env=env
    )
    await bot.start()
    yield bot
    assert await bot.stop() == 0, bot.log()
    assert "Traceback" not in bot.log(), bot.log()


@pytest_asyncio.fixture(loop_scope="module")
async def redis(server: RedisServer) -> AsyncIterator[Redis]:
    client = server.client()
    yield client
    await client.aclose()


def _patient(api: FakeBotAPI) -> FakeUser:
    return api.user(random.randint(10**8, 10**9), "en")


async def _eventually(check: Any, within: float = 15.0) -> None:
    async def holds() -> None:
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(holds(), within)


async def _flag(api: FakeBotAPI, patient: FakeUser, board: TeamBoard) -> str:
    """The patient writes an emergency; the case id of the ticket the team gets."""
    before = set(api.topics)
    await patient.say("my husband is unconscious and won't wake up", until=says("120"))
    await api.wait_for(lambda: bool(set(api.topics) - before))
    (topic,) = set(api.topics) - before

    async def linked() -> bool:
        return await board.case_of_topic(GROUP, topic) is not None

    await _eventually(linked)
    case_id = await board.case_of_topic(GROUP, topic)
    assert case_id is not None
    return case_id


async def _done(redis: Redis, api: FakeBotAPI, update_id: int) -> bool:
    return await redis.get(f"{key_prefix(api.bot_id)}update:{update_id}") == b"done"


async def _dump(redis: Redis, key: bytes) -> list[bytes]:
    """The key's value as byte strings, whatever its type."""
    kind = (await redis.type(key)).decode()
    if kind == "string":
        return [await redis.get(key) or b""]
    if kind == "hash":
        return [part for pair in (await redis.hgetall(key)).items() for part in pair]
    if kind == "set":
        return list(await redis.smembers(key))
    if kind == "zset":
        return list(await redis.zrange(key, 0, -1))
    if kind == "list":
        return list(await redis.lrange(key, 0, -1))
    if kind == "stream":
        found: list[bytes] = []
        for _, fields in await redis.xrange(key):
            for name, value in fields.items():
                found += [name, value]
        for group in await redis.xinfo_groups(key):
            for entry in await redis.xpending_range(key, group["name"], "-", "+", 1000):
                found.append(str(entry).encode())
        return found
    return [kind.encode()]


async def _mentions(redis: Redis, patterns: list[re.Pattern[bytes]]) -> list[str]:
    """Every key whose name or value matches one of the patterns."""
    hits = []
    async for key in redis.scan_iter(count=1000):
        for part in [key, *await _dump(redis, key)]:
            matched = [p.pattern.decode() for p in patterns if p.search(part)]
            if matched:
                hits.append(f"{key.decode()}: {matched} in {part[:200]!r}")
    return hits


# ---- crafted button data ------------------------------------------------------------------------


async def test_crafted_button_data_cannot_reach_another_patients_case(
    team_bot: BotProcess, api: FakeBotAPI, redis: Redis
) -> None:
    board = TeamBoard(redis)
    other = _patient(api)
    other_case = await _flag(api, other, board)
    attacker = _patient(api)
    await attacker.say("I have had a fever since yesterday", until=offers("consent:yes"))
    await attacker.tap("consent:yes", until=offers("who:self"))

    # patients' buttons carry answers, never a case id
    for patient in (other, attacker):
        for message in api.sent_to(patient.user_id):
            for data in message.data:
                assert other_case not in data
                assert re.fullmatch(r"[a-z_]+(:[A-Za-z0-9_.-]+){0,2}", data), data

    keys = [f"wz:session:tg:{other.user_id}", f"wz:case:{other_case}", f"wz:ticket:{other_case}"]
    before = {key: await redis.get(key) for key in keys}
    trail_before = await board.audit(other_case)
    assert all(before.values())

    shown = next(m for m in reversed(api.sent_to(attacker.user_id)) if "who:self" in m.data)
    crafted = [
        f"team:claim:{other_case}",
        f"team:close:{other_case}",
        other_case,
        f"case:{other_case}",
        f"who:self:{other_case}",
        f"a:stiff_neck:yes:{other_case}",
        "p:fever_test",
        "open:none",
        "human:yes",
        "x" * 64,
        "a:..:..",
        "a:stiff_neck:yes",
    ]
    seen_by_other = api.sent_to(other.user_id)
    for data in crafted:
        update = updates.tap(attacker.user_id, data, message_id=shown.message_id, keyboard=shown.markup())
        update["callback_query"]["message"]["from"]["id"] = api.bot_id
        update_id = await api.push(update)
        await _eventually(lambda update_id=update_id: _done(redis, api, update_id))

    assert {key: await redis.get(key) for key in keys} == before
    assert await board.audit(other_case) == trail_before
    ticket = await board.get(other_case)
    assert ticket is not None
    assert ticket.status is TicketStatus.OPEN
    assert not any(m.thread_id is not None and "claimed" in m.text for m in api.sent_to(GROUP))
    # what the crafted data did, it did to the attacker's own consultation (the last one, a
    # "yes" to a red-flag question, raised their own alarm)
    assert any("120" in m.text for m in api.sent_to(attacker.user_id))
    assert not any("120" in m.text for m in api.sent_to(other.user_id)[len(seen_by_other) :])


# ---- export, then /forget --------------------------------------------------------------------------


async def _export(server: RedisServer, case_id: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(WENZHEN),
        "cases",
        "export",
        case_id,
        *args,
        env={"REDIS_URL": server.url, "WENZHEN_CONFIG": "/nonexistent.toml", "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_a_flagged_case_is_exported_then_forgotten_without_a_trace(
    team_bot: BotProcess, api: FakeBotAPI, redis: Redis, server: RedisServer, tmp_path: Path
) -> None:
    board = TeamBoard(redis)
    patient = _patient(api)
    pid = f"tg:{patient.user_id}"
    # a whole consultation first (a case of its own), then a new complaint (a second case) and an
    # emergency in it: flagged to the team
    await patient.say("I have had a fever since yesterday", until=offers("consent:yes"))
    await patient.tap("consent:yes", until=offers("who:self"))
    await patient.tap("who:self", until=says("How old"))
    await patient.say("34", until=offers("sex:F"))
    await patient.tap("sex:F", until=offers("a:stiff_neck:no"))
    await patient.tap("a:stiff_neck:no", until=offers("a:drinking:normal"))
    await patient.tap("a:drinking:normal", until=offers("open:none"))
    await patient.tap("open:none", until=says("Rest and drink fluids."))
    await patient.say("I have a cough too", until=offers("who:self"))  # a new case
    case_id = await _flag(api, patient, board)
    bystander = _patient(api)  # another patient's flagged case, which must survive the /forget
    bystander_case = await _flag(api, bystander, board)

    # the doctor claims it, talks with the patient and closes it; a stranger is refused; a note
    doctor = api.member(DOCTOR, GROUP)
    await doctor.tap(f"team:claim:{case_id}")
    await api.wait_for(
        lambda: any("Dr Li" in m.text and "joined" in m.text for m in api.sent_to(patient.user_id))
    )
    topic = _topic_of(api, case_id)
    assert topic is not None
    await doctor.say(topic, "Is he breathing?")
    await api.wait_for(lambda: any(m.text == "Dr Li: Is he breathing?" for m in api.sent_to(patient.user_id)))
    await patient.send(updates.message(patient.user_id, "yes, eyes open now"))
    await api.wait_for(lambda: any("eyes open now" in m.text for m in api.in_topic(GROUP, topic)))
    await api.member(STRANGER, GROUP).tap(f"team:close:{case_id}")
    await board.note(case_id, OPS, "called the family back", via="dashboard")
    await doctor.tap(f"team:close:{case_id}")
    await api.wait_for(lambda: any("handed you back" in m.text for m in api.sent_to(patient.user_id)))

    # the clinic's record of the case
    out = tmp_path / "case.json"
    code, _, err = await _export(server, case_id, "--out", str(out))
    assert code == 0, err
    record = CaseExport.model_validate_json(out.read_text())
    assert record.case is not None
    assert record.case.patient_id == pid
    assert any("unconscious" in turn.text for turn in record.case.transcript)
    assert any("eyes open now" in turn.text for turn in record.case.transcript)
    assert record.ticket is not None
    assert record.ticket.status is TicketStatus.CLOSED
    kinds = [entry.kind for entry in record.audit]
    assert {"flagged", "claimed", "message", "refused", "note", "closed"} <= set(kinds)
    code, printed, _ = await _export(server, case_id)  # to standard output
    assert code == 0
    assert CaseExport.model_validate_json(printed).audit == record.audit

    case_ids = {c.decode() for c in await redis.smembers(f"wz:patient:{pid}")}
    assert case_id in case_ids
    assert len(case_ids) == 2
    patterns = [
        re.compile(re.escape(pid.encode())),
        re.compile(rb"(?<!\d)" + str(patient.user_id).encode() + rb"(?!\d)"),
        re.compile(re.escape(patient_alias(pid).encode())),
        *(re.compile(re.escape(c.encode())) for c in case_ids),
    ]
    before = await _mentions(redis, patterns)
    for kind in ("session:", "case:", "patient:", "ticket:", "audit:", "escalations", "team:events"):
        assert any(hit.startswith(f"wz:{kind}") for hit in before), kind  # the scan sees them all
    # /forget
    await patient.command("forget", until=offers("forget:yes"))
    await patient.tap("forget:yes", until=says("deleted"))

    async def settled() -> bool:  # the bot finished with every update and every team action
        journal = await redis.hlen(f"{key_prefix(api.bot_id)}journal")
        return int(journal) == 0 and int(await redis.xlen("wz:team:outbox")) == 0

    await _eventually(settled)
    assert await _mentions(redis, patterns) == []
    code, _, err = await _export(server, case_id)
    assert code == 1
    assert "no case" in err
    # the other patient's case is all there
    assert await board.get(bystander_case) is not None
    assert await redis.exists(f"wz:case:{bystander_case}", f"wz:audit:{bystander_case}") == 2


def _topic_of(api: FakeBotAPI, case_id: str) -> int | None:
    for message in api.sent_to(GROUP):
        if f"team:claim:{case_id}" in message.data or f"team:close:{case_id}" in message.data:
            return message.thread_id
    return None
