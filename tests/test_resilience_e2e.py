"""Faults survived, end to end: the real bot process (`wenzhen serve`) against the fake Bot API
server, on real Redis. An update Telegram delivers twice is handled once; a bot killed with
SIGKILL in the middle of several consultations resumes each at its step after a restart, with
no message handled twice and none lost; a Redis stopped for 30 seconds still lets emergency and
crisis replies out, other turns get a clear "temporary problem" reply and resume when it is
back, and nothing stored is lost; secrets never reach the log, even at DEBUG. Every wait is on
a condition, with a timeout (the outage itself is timed, on purpose)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from bot.telegram.dedupe import key_prefix
from dialog.session import Session
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard
from tests.helpers import fixture_rules_dir
from tests.redis_server import RedisServer
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.fake_api import SECRET_HEADER, FakeBotAPI, FakeUser, Sent, offers, says
from tests.telegram_fixtures.process import BotProcess, free_port

OUTAGE_SECONDS = 30.0
GROUP = -100_999
TEAM = {
    "name": "north",
    "chat_id": GROUP,
    "lang": "en",
    "members": [{"id": "li", "name": "Dr Li", "role": "doctor", "telegram_id": 9301}],
}
EMERGENCY = "my husband is unconscious and won't wake up"
CRISIS = "I want to kill myself"
TEMPORARY = "temporary problem"


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_rules_dir(tmp_path_factory.mktemp("rules"))


def new_user(api: FakeBotAPI, lang: str = "en") -> FakeUser:
    return api.user(random.randint(10**8, 10**9), lang)


async def wait_for_log(bot: BotProcess, fragment: str, within: float = 15.0, count: int = 1) -> None:
    async def seen() -> None:
        while True:
            if bot.log().count(fragment) >= count:
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(seen(), within)
    except TimeoutError:
        raise AssertionError(f"{fragment!r} not in the log within {within}s:\n{bot.log()}") from None


async def eventually(condition: Callable[[], Any], within: float = 15.0) -> None:
    """Until the async `condition()` is true."""

    async def holds() -> None:
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(holds(), within)


def messages_offering(api: FakeBotAPI, user: FakeUser, data: str) -> list[Sent]:
    return [m for m in api.sent_to(user.user_id) if data in m.data]


# The engine-test fever consultation, step by step: what the patient does, what ends the bot's
# turn (its keyboard is taken away once answered), and words only the bot's answer has.
STEPS: list[tuple[str, str, Callable[[Sent], bool], str]] = [
    ("say", "I have had a fever since yesterday", offers("consent:yes"), "I am not a doctor"),
    ("tap", "consent:yes", offers("who:self"), "Who is this about?"),
    ("tap", "who:self", says("How old"), "How old are you?"),
    ("say", "34", offers("sex:F"), "male or female"),
    ("tap", "sex:F", offers("a:stiff_neck:no"), "Is the neck stiff?"),
    ("tap", "a:stiff_neck:no", offers("a:drinking:normal"), "How is drinking?"),
    ("say", "as usual", offers("open:none"), "anything else you'd like to tell me"),
    ("tap", "open:none", says("Rest and drink fluids."), "Rest and drink fluids."),
]


def answers_to(api: FakeBotAPI, user: FakeUser, step: int) -> int:
    """How many times the bot answered step `step` (asked the question that follows it)."""
    return sum(1 for m in api.sent_to(user.user_id) if STEPS[step][3] in m.text)


async def play(user: FakeUser, first: int, last: int, within: float = 15.0) -> None:
    """Steps first..last-1 of the consultation, each waiting for its answer."""
    for how, what, until, _ in STEPS[first:last]:
        if how == "say":
            await user.say(what, until=until, within=within)
        else:
            await user.tap(what, until=until, within=within)


def step_update(user: FakeUser, step: int) -> dict[str, Any]:
    how, what, _, _ = STEPS[step]
    if how == "say":
        return updates.message(user.user_id, what, lang=user.lang)
    shown = next(m for m in reversed(user.api.sent_to(user.user_id)) if what in m.data)
    update = updates.tap(
        user.user_id, what, message_id=shown.message_id, lang=user.lang, keyboard=shown.markup()
    )
    update["callback_query"]["message"]["from"]["id"] = user.api.bot_id
    return update


# ---- an update delivered twice ------------------------------------------------------------------


async def test_an_update_delivered_twice_is_handled_once(
    tmp_path: Path, redis_url: str, rules_dir: Path
) -> None:
    async with FakeBotAPI("700101:TEST-dedupe") as api:
        bot = BotProcess(api, workdir=tmp_path, redis_url=redis_url, rules_dir=rules_dir)
        await bot.start()
        redis = Redis.from_url(redis_url)
        try:
            user = new_user(api)
            first = await api.push(updates.message(user.user_id, "I have had a fever since yesterday"))
            await api.wait_for(lambda: bool(messages_offering(api, user, "consent:yes")))
            mark = f"{key_prefix(api.bot_id)}update:{first}"
            await eventually(lambda: _is_done(redis, mark))
            # Telegram delivers it again (the bot "did not confirm" it): it was handled, so dropped
            await api.redeliver(first)
            await wait_for_log(bot, f"update {first} delivered again (already handled)")

            # delivered again while it is still being handled (its reply hangs in Telegram)
            api.fail("sendMessage", 2.0, chat_id=user.user_id)  # a hang, shorter than the 3 s timeout
            tap = step_update(user, 1)
            second = await api.push(tap)
            await api.wait_for(lambda: any(c.status == 408 for c in api.calls_of("sendMessage")))
            await api.redeliver(second)
            await wait_for_log(bot, f"update {second} delivered again (being handled)")
            await api.wait_for(lambda: bool(messages_offering(api, user, "who:self")), within=20)

            await play(user, 2, 4)  # the consultation goes on, one answer per message
            assert [answers_to(api, user, step) for step in range(4)] == [1, 1, 1, 1]
            session = await RedisStore(redis).load(f"tg:{user.user_id}")
            assert session is not None
            assert session.case is not None
            said = [t.text for t in session.case.transcript if t.role == "patient"]
            assert said.count("I have had a fever since yesterday") == 1
        finally:
            await redis.aclose()
            assert await bot.stop() == 0
        assert "Traceback" not in bot.log(), bot.log()


# ---- SIGKILL in the middle of several consultations ------------------------------------------


async def test_a_bot_killed_mid_turn_resumes_every_consultation_and_loses_nothing(
    tmp_path: Path, redis_url: str, rules_dir: Path
) -> None:
    async with FakeBotAPI("700102:TEST-kill") as api:
        # a killed process's claims and patient locks lapse after 2 seconds
        env = {"WENZHEN_TELEGRAM_LOCK_TIMEOUT": "2"}
        bot = BotProcess(api, workdir=tmp_path, redis_url=redis_url, rules_dir=rules_dir, env=env)
        await bot.start()
        redis = Redis.from_url(redis_url)
        journal = f"{key_prefix(api.bot_id)}journal"
        try:
            # four patients, each at a different step of the consultation
            patients = [new_user(api) for _ in range(4)]
            at = {p.user_id: step for p, step in zip(patients, (1, 3, 4, 5), strict=True)}
            await asyncio.gather(*(play(p, 0, at[p.user_id]) for p in patients))

            # Each sends the next answer; Telegram hangs on every reply (the bot times out after
            # 3 s and retries), so every turn is worked out and stored, but not yet sent.
            pushed: dict[int, list[int]] = {}
            for p in patients:
                api.fail("sendMessage", *([30.0] * 8), chat_id=p.user_id)
                pushed[p.user_id] = [await api.push(step_update(p, at[p.user_id]))]
            last = patients[-1]  # ... and the last one answers the question after that too,
            # without waiting (it queues behind the first for the patient's lock)
            pushed[last.user_id].append(await api.push(updates.message(last.user_id, "as usual")))

            def hanging(p: FakeUser) -> bool:
                return any(
                    c.status == 408 and c.params.get("chat_id") == str(p.user_id)
                    for c in api.calls_of("sendMessage")
                )

            await api.wait_for(lambda: all(hanging(p) for p in patients), within=20)
            # every message is in the journal; the answers worked out so far are kept with them
            in_journal = {_text(k) for k in await redis.hkeys(journal)}
            assert {str(i) for ids in pushed.values() for i in ids} <= in_journal
            assert {f"{ids[0]}:out" for ids in pushed.values()} <= in_journal
            assert f"{pushed[last.user_id][1]}:out" not in in_journal  # still waiting for its turn
            await bot.kill()  # SIGKILL: no goodbye, nothing flushed
            api.faults.clear()

            await bot.start()
            for p in patients:  # each gets the answer to the message it sent before the crash
                until = STEPS[at[p.user_id]][2]
                await api.wait_for(lambda p=p, until=until: any(until(m) for m in api.sent_to(p.user_id)), 30)
            await api.wait_for(lambda: any(offers("open:none")(m) for m in api.sent_to(last.user_id)), 30)
            await wait_for_log(bot, "recovering")
            recovered = [int(n) for n in re.findall(r"recovering (\d+) update", bot.log())]
            assert sum(recovered) == 5, bot.log()

            # ... and goes on from there to the advice, one step at a time
            resume = {p.user_id: at[p.user_id] + 1 for p in patients}
            resume[last.user_id] += 1
            await asyncio.gather(*(play(p, resume[p.user_id], len(STEPS)) for p in patients))
            await eventually(lambda: _journal_empty(redis, journal))

            for p in patients:
                # every question was asked once, every answer taken once
                assert [answers_to(api, p, step) for step in range(len(STEPS))] == [1] * len(STEPS)
                session = await RedisStore(redis).load(f"tg:{p.user_id}")
                assert session is not None
                assert session.case is not None
                assert session.case.disposition is not None
                said = [t.text for t in session.case.transcript if t.role == "patient"]
                assert said.count("34") == 1
                assert said.count("as usual") == 1
                _no_bot_turn_twice(session)
        finally:
            await bot.stop()
            await redis.aclose()
        assert "Traceback" not in bot.log(), bot.log()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _is_done(redis: Redis, mark: str) -> bool:
    return await redis.get(mark) == b"done"


async def _journal_empty(redis: Redis, journal: str) -> bool:
    return int(await redis.hlen(journal)) == 0


def _no_bot_turn_twice(session: Session) -> None:
    assert session.case is not None
    bot_turns = [t.text for t in session.case.transcript if t.role == "bot"]
    assert all(a != b for a, b in itertools.pairwise(bot_turns)), bot_turns


# ---- Redis stopped for 30 seconds ---------------------------------------------------------------


async def snapshot(redis: Redis, lasting: float) -> dict[bytes, Any]:
    """Every key that will outlive `lasting` seconds, with its value, whatever its type."""
    found: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=500):
        ttl = await redis.ttl(key)
        if 0 <= ttl < lasting:
            continue
        kind = _text(await redis.type(key))
        if kind == "string":
            found[key] = await redis.get(key)
        elif kind == "hash":
            found[key] = await redis.hgetall(key)
        elif kind == "set":
            found[key] = sorted(await redis.smembers(key))
        elif kind == "zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            found[key] = await redis.lrange(key, 0, -1)
        elif kind == "stream":
            found[key] = await redis.xrange(key)
    return found


async def test_a_redis_outage_of_30_seconds_loses_nothing(tmp_path: Path, rules_dir: Path) -> None:
    server = RedisServer(tmp_path / "redis", password="outage-Pw-7f3k2")
    await server.start()
    redis = server.client()
    async with FakeBotAPI("700103:TEST-outage") as api:
        env = {"WENZHEN_TEAMS": json.dumps([TEAM])}
        bot = BotProcess(api, workdir=tmp_path / "bot", redis_url=server.url, rules_dir=rules_dir, env=env)
        await bot.start()
        try:
            resting = [new_user(api) for _ in range(2)]  # consultations in progress
            at = {resting[0].user_id: 3, resting[1].user_id: 6}  # both at a typed answer
            await asyncio.gather(*(play(p, 0, at[p.user_id]) for p in resting))
            before = await snapshot(redis, lasting=600)
            assert any(key.startswith(b"wz:session:") for key in before)

            await server.stop()
            stopped = time.monotonic()
            rounds = 0
            alarmed: list[FakeUser] = []
            while True:  # every few seconds through the outage: alarms answered, the rest told
                rounds += 1
                alarmed += [new_user(api), new_user(api)]
                emergency = await alarmed[-2].say(EMERGENCY, until=says("120"), within=20)
                assert TEMPORARY not in emergency[-1].text
                crisis = await alarmed[-1].say(CRISIS, until=says("12356"), within=20)
                assert TEMPORARY not in crisis[-1].text
                for p in resting:
                    await p.say(STEPS[at[p.user_id]][1], until=says(TEMPORARY), within=20)
                left = OUTAGE_SECONDS - (time.monotonic() - stopped)
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 8.0))  # the outage is timed: this is its length
            await server.start()
            outage = time.monotonic() - stopped
            assert outage >= OUTAGE_SECONDS
            await redis.aclose()
            redis = server.client()

            after = await snapshot(redis, lasting=0)
            missing = [key for key in before if before[key] != after.get(key)]
            assert not missing, missing  # the append-only file brought every record back

            # the alarms raised during the outage reach the doctor team once Redis is back
            await api.wait_for(lambda: len(api.topics) >= len(alarmed), within=45)
            board = TeamBoard(redis)
            tickets = {ticket.patient_id: ticket for ticket in await board.tickets()}
            assert {f"tg:{p.user_id}" for p in alarmed} == set(tickets)
            # and the team's side works again: a doctor's claim reaches the patient
            later = new_user(api)
            await later.say(EMERGENCY, until=says("120"))
            await api.wait_for(lambda: len(api.topics) > len(alarmed))
            case_id = next(t.case_id for t in await board.tickets() if t.patient_id == f"tg:{later.user_id}")
            claim = f"team:claim:{case_id}"
            await api.wait_for(lambda: any(claim in m.data for m in api.sent_to(GROUP)))
            await api.member(9301, GROUP).tap(claim)
            await api.wait_for(lambda: any("joined" in m.text for m in api.sent_to(later.user_id)), 20)

            # each consultation resumes at the step it was at
            for p in resting:
                await play(p, at[p.user_id], len(STEPS), within=20)
                session = await RedisStore(redis).load(f"tg:{p.user_id}")
                assert session is not None
                assert session.case is not None
                assert session.case.disposition is not None
            print(f"redis down {outage:.1f}s; {rounds} rounds: {len(alarmed)} alarms, {2 * rounds} turns")
        finally:
            await bot.stop()
            await redis.aclose()
            await server.stop()
        log = bot.log()
        assert "Traceback" not in log, log
        assert server.password is not None
        assert server.password not in log
        assert api.token.split(":", 1)[1] not in log


# ---- secrets never reach the log ------------------------------------------------------------------


class FakeModelServer:
    """An OpenAI-compatible server that insists on its API key and fails the first completion."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.authorized = 0
        self.refused = 0
        self.failures_left = 1
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeModelServer:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _allowed(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            self.authorized += 1
            return True
        self.refused += 1
        return False

    async def _models(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if self.failures_left:
            self.failures_left -= 1
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        body = await request.json()
        text = "Please tell me a little more."
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return web.json_response({"id": "c1", "object": "chat.completion", "choices": [choice]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}}],
        }
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


async def test_secrets_never_reach_the_log_even_at_debug(tmp_path: Path, rules_dir: Path) -> None:
    token = "700104:AAHk3ySecretT0kenValue_x9"
    redis_password = "rPw-9s8d7f6g5h"
    model_key = "sk-test-M0delKey-5x4c3v"
    webhook_secret = "whsec_Zq8Wm2Lp5Nx7"
    server = RedisServer(tmp_path / "redis", password=redis_password)
    await server.start()
    async with FakeModelServer(model_key) as model, FakeBotAPI(token) as api:
        env = {
            "WENZHEN_LOG_LEVEL": "DEBUG",
            "WENZHEN_MODEL": model.url,
            "WENZHEN_MODEL_API_KEY": model_key,
            "WENZHEN_MODEL_PHRASE": "all",
            "WENZHEN_TELEGRAM_WEBHOOK_SECRET": webhook_secret,
        }
        bot = BotProcess(
            api,
            workdir=tmp_path / "bot",
            redis_url=server.url,
            rules_dir=rules_dir,
            webhook_port=free_port(),
            env=env,
        )
        await bot.start()
        try:
            assert api.webhook_secret == webhook_secret
            user = new_user(api)
            api.fail("sendMessage", 502, 429, chat_id=user.user_id)  # Telegram's faults are logged
            await play(user, 0, len(STEPS), within=30)
            await new_user(api).say(EMERGENCY, until=says("120"), within=20)
            assert model.authorized > 0  # the key was in use

            # a forged update is refused; one Telegram posts twice at once is handled once
            other = new_user(api)
            update = updates.message(other.user_id, "/help")
            async with aiohttp.ClientSession() as client:
                async with client.post(
                    bot.webhook_url, json=update, headers={SECRET_HEADER: "nope"}
                ) as refused:
                    assert refused.status == 401

                async def post() -> int:
                    headers = {SECRET_HEADER: webhook_secret}
                    async with client.post(bot.webhook_url, json=update, headers=headers) as response:
                        return response.status

                assert await asyncio.gather(post(), post()) == [200, 200]
            await api.wait_for(lambda: any("/restart" in m.text for m in api.sent_to(other.user_id)))
            await wait_for_log(bot, f"update {update['update_id']} delivered again")
            assert sum(1 for m in api.sent_to(other.user_id) if "/restart" in m.text) == 1
        finally:
            await bot.stop()
            await server.stop()
        log = bot.log()
        assert "DEBUG" in log  # the level took effect
        assert model.refused == 0
        for secret in (token, token.split(":", 1)[1], redis_password, model_key, webhook_secret):
            assert secret not in log, secret
        assert "Traceback" not in log, log
