"""The data lifecycle on real Redis: retention periods per kind of record (sessions and cases,
escalations, tickets, audit trails), taken from the settings; the audit trail is append-only
(watched with Redis MONITOR while every method of the board runs); a Redis client as the bot
opens it survives a Redis restart without failing a command. /forget after a whole flagged
consultation, the case export command and crafted callbacks are in test_lifecycle_e2e.py."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.app import open_redis, redis_store, team_board
from bot.config import ConfigError, load_settings
from dialog.events import Escalation
from dialog.session import Case, Session
from dialog.team import Member, Role
from safety import Level
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard
from tests.redis_server import RedisServer

DAY = 86400
LI = Member(id="li", name="Dr Li", role=Role.DOCTOR, telegram_id=1)
OPS = Member(id="ops", name="Ops", role=Role.OPERATOR, telegram_id=3)


def _escalation(case_id: str, patient_id: str) -> Escalation:
    return Escalation(
        case_id=case_id, patient_id=patient_id, reason="red_flag", priority=0, level=Level.EMERGENCY
    )


@pytest.fixture
async def clean(redis: Redis, key_prefix: str) -> AsyncIterator[str]:
    yield key_prefix
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)


# ---- retention --------------------------------------------------------------------------------


def test_retention_periods_are_settings_per_kind_of_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WENZHEN_CONFIG", "/nonexistent.toml")
    settings = load_settings()
    assert (settings.retention_days, settings.retention_escalations_days, settings.retention_audit_days) == (
        30,
        30,
        365,
    )
    monkeypatch.setenv("WENZHEN_RETENTION_AUDIT_DAYS", "3650")
    monkeypatch.setenv("WENZHEN_RETENTION_ESCALATIONS_DAYS", "7")
    settings = load_settings()
    assert (settings.retention_escalations_days, settings.retention_audit_days) == (7, 3650)
    monkeypatch.setenv("WENZHEN_RETENTION_AUDIT_DAYS", "0")
    with pytest.raises(ConfigError, match="WENZHEN_RETENTION_AUDIT_DAYS"):
        load_settings()


async def test_each_kind_of_record_expires_after_its_own_period(redis: Redis, clean: str) -> None:
    settings = load_settings(retention_days=30, retention_escalations_days=7, retention_audit_days=365)
    store = redis_store(settings, redis, prefix=clean)
    board = team_board(settings, redis, prefix=clean)

    case = Case(case_id="c1", patient_id="tg:1", rules_version="v")
    await store.save(Session(patient_id="tg:1", case=case))
    for key in ("session:tg:1", "case:c1", "patient:tg:1"):
        assert 29 * DAY < await redis.ttl(clean + key) <= 30 * DAY, key

    # the escalation stream keeps 7 days: older entries go when a new one is written
    stream = clean + "escalations"
    now_ms = int(time.time() * 1000)
    await redis.xadd(stream, {"json": "{}"}, id=f"{now_ms - 8 * DAY * 1000}-0")
    kept = await redis.xadd(stream, {"json": "{}"}, id=f"{now_ms - 6 * DAY * 1000}-0")
    await store.escalate(_escalation("c1", "tg:1"))
    ids = [entry_id for entry_id, _ in await redis.xrange(stream)]
    assert len(ids) == 2
    assert ids[0] == kept

    # tickets and topic links: 30 days after their last change; the audit trail: 365 days
    await board.flag(_escalation("c1", "tg:1"), "east", case, "en")
    await board.set_topic("c1", -100, 7, 9)
    assert 29 * DAY < await redis.ttl(clean + "ticket:c1") <= 30 * DAY
    assert 29 * DAY < await redis.ttl(clean + "topic:-100:7") <= 30 * DAY
    assert 364 * DAY < await redis.ttl(clean + "audit:c1") <= 365 * DAY
    await board.refused("c1", "tg:99", via="telegram", why="claim: not on the list")
    assert 364 * DAY < await redis.ttl(clean + "audit:c1") <= 365 * DAY

    # a board built without retention (e.g. an older process) keeps the expiry a ticket has
    await TeamBoard(redis, prefix=clean).claim("c1", LI, via="dashboard")
    assert 29 * DAY < await redis.ttl(clean + "ticket:c1") <= 30 * DAY

    # an expired ticket leaves the board's list too
    await redis.delete(clean + "ticket:c1")
    assert await board.tickets() == []
    assert await redis.zcard(clean + "tickets") == 0


# ---- the audit trail is append-only ------------------------------------------------------------

# Every public method of the board and whether it may delete audit entries. A new method must be
# added here, after checking that it does not edit or remove audit entries.
BOARD_METHODS = {
    "flag": False,
    "get": False,
    "tickets": False,
    "claim": False,
    "close": False,
    "message": False,
    "note": False,
    "refused": False,
    "set_topic": False,
    "case_of_topic": False,
    "set_sbar": False,
    "alerted": False,
    "due_alerts": False,
    "audit": False,
    "latest_event_id": False,
    "events": False,
    "actions": False,
    "done": False,
    "issue_login_token": False,
    "redeem_login_token": False,
    "forget_cases": True,  # the patient's /forget: the whole trail of their cases, nothing else
}
AUDIT_WRITES = {"XADD", "EXPIRE"}  # appending, and the retention period
AUDIT_READS = {"XRANGE", "XREVRANGE", "XLEN", "EXISTS", "TTL", "TYPE"}


def test_the_board_offers_no_way_to_edit_or_remove_an_audit_entry() -> None:
    public = {
        name
        for name, member in inspect.getmembers(TeamBoard, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public == set(BOARD_METHODS), "a new TeamBoard method: add it to BOARD_METHODS once checked"


async def test_every_board_method_only_appends_to_the_audit_trail(
    redis: Redis, redis_url: str, clean: str
) -> None:
    board = TeamBoard(redis, prefix=clean, audit_retention_seconds=365 * DAY)
    other = Case(case_id="keep", patient_id="tg:2", rules_version="v")
    await board.flag(_escalation("keep", "tg:2"), "east", other, "en")
    await board.note("keep", OPS, "another patient's case", via="dashboard")
    kept_before = await board.audit("keep")

    calls: list[tuple[str, Any]] = [
        ("flag", board.flag(_escalation("c1", "tg:1"), "east", None, "en")),
        ("get", board.get("c1")),
        ("tickets", board.tickets()),
        ("claim", board.claim("c1", LI, via="telegram")),
        ("message", board.message("c1", LI, "any fever?", via="telegram")),
        ("note", board.note("c1", OPS, "called the family", via="dashboard")),
        ("refused", board.refused("c1", "tg:99", via="telegram", why="claim: not on the list")),
        ("set_topic", board.set_topic("c1", -100, 7, 9)),
        ("case_of_topic", board.case_of_topic(-100, 7)),
        ("set_sbar", board.set_sbar("c1", "S: ...")),
        ("alerted", board.alerted("c1", "on call: wang")),
        ("due_alerts", board.due_alerts(timedelta(0))),
        ("audit", board.audit("c1")),
        ("latest_event_id", board.latest_event_id()),
        ("events", board.events("0-0", block_ms=1)),
        ("actions", board.actions("test", block_ms=1)),
        ("close", board.close("c1", LI, via="telegram")),
        ("issue_login_token", board.issue_login_token("li", ttl=timedelta(minutes=1))),
        ("redeem_login_token", board.redeem_login_token("nope")),
        ("forget_cases", board.forget_cases(["c1"])),
    ]
    monitor_client = Redis.from_url(redis_url)
    seen: list[str] = []
    try:
        async with monitor_client.monitor() as monitor:
            watching = asyncio.ensure_future(_watch(monitor, seen))
            await redis.ping()  # the monitor is on before the first command
            for name, call in calls:
                await redis.echo(f"method:{name}")
                result = await call
                if name == "actions":
                    for entry_id, _ in result:
                        await redis.echo("method:done")
                        await board.done(entry_id)
            await redis.echo("method:end")
            await asyncio.wait_for(watching, 10)
    finally:
        await monitor_client.aclose()
    assert {name for name, _ in calls} | {"done"} == set(BOARD_METHODS)

    method = "?"
    touched: dict[str, set[str]] = {}
    for command in seen:
        words = command.split(" ")
        if words[0] == "ECHO" and words[1].startswith("method:"):
            method = words[1].removeprefix("method:")
            continue
        if any(f"{clean}audit:" in word for word in words[1:]):
            touched.setdefault(method, set()).add(words[0])
    allowed_everywhere = AUDIT_WRITES | AUDIT_READS
    for name, commands in touched.items():
        allowed = allowed_everywhere | ({"DEL", "UNLINK"} if BOARD_METHODS[name] else set())
        assert commands <= allowed, (name, commands - allowed)
    assert "XADD" in touched["note"]
    assert "DEL" in touched["forget_cases"]
    assert await board.audit("keep") == kept_before  # another case's trail: untouched throughout


async def _watch(monitor: Any, seen: list[str]) -> None:
    while True:
        info = await monitor.next_command()
        command = str(info["command"])
        if command.startswith("ECHO "):
            command = command.replace("'", "").replace('"', "")
        seen.append(command)
        if command == "ECHO method:end":
            return


# ---- a Redis restart -------------------------------------------------------------------------


async def test_the_bots_redis_client_survives_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    settings = load_settings(redis_url=server.url)
    try:
        async with open_redis(settings) as redis:
            store = RedisStore(redis)
            await store.save(Session(patient_id="tg:1"))
            await server.stop()
            await server.start()  # the pooled connection is dead: the retry takes a new one
            assert await store.load("tg:1") is not None
    finally:
        await server.stop()
