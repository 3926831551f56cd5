"""The doctor team end to end over real HTTP: the real bot process (`wenzhen serve`) with a team
configured, against the fake Bot API server, on real Redis. A flagged case opens a forum topic
with its card; a doctor claims it, talks to the patient through the bot and closes it; people
not on the list are refused; unclaimed urgent cases are re-alerted to the on-call list; the
audit trail records every action. Every wait is on a condition, with a timeout."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from dialog.team import TicketStatus
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.fake_api import FakeBotAPI, FakeUser, offers, says
from tests.telegram_fixtures.process import BotProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = TypeVar("T")

GROUP = -100_777
DOCTOR, OPERATOR, ON_CALL, STRANGER = 9001, 9002, 9003, 9099
TEAM = {
    "name": "east",
    "chat_id": GROUP,
    "lang": "en",
    "members": [
        {"id": "li", "name": "Dr Li", "role": "doctor", "telegram_id": DOCTOR},
        {"id": "ops", "name": "Ops Zhang", "role": "operator", "telegram_id": OPERATOR},
        {"id": "wang", "name": "Dr Wang", "role": "doctor", "telegram_id": ON_CALL},
    ],
    "on_call": ["wang"],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI("700009:TEST-team") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def team_bot(
    api: FakeBotAPI, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> AsyncIterator[BotProcess]:
    rules_dir = fixture_rules_dir(tmp_path_factory.mktemp("rules"))
    env = {"WENZHEN_TEAMS": json.dumps([TEAM]), "WENZHEN_TEAM_REALERT_MINUTES": "0.05"}  # 3 seconds
    workdir = tmp_path_factory.mktemp("team")
    bot = BotProcess(api, workdir=workdir, redis_url=redis_url, rules_dir=rules_dir, env=env)
    await bot.start()
    yield bot
    assert await bot.stop() == 0, bot.log()
    assert "Traceback" not in bot.log(), bot.log()


@pytest_asyncio.fixture(loop_scope="module")
async def board(redis_url: str) -> AsyncIterator[TeamBoard]:
    redis = Redis.from_url(redis_url)
    yield TeamBoard(redis)
    await redis.aclose()


def _patient(api: FakeBotAPI) -> FakeUser:
    return api.user(random.randint(10**8, 10**9), "en")


async def _flag_an_emergency(api: FakeBotAPI, patient: FakeUser) -> int:
    """The patient writes an emergency; returns the topic opened for the case, once its card is
    there (the team is told alongside the patient's reply, not before it)."""
    before = set(api.topics)
    await patient.say("my husband is unconscious and won't wake up", until=says("120"))
    return await _new_topic_with_card(api, before)


async def _new_topic_with_card(api: FakeBotAPI, before: set[int]) -> int:
    def opened() -> list[int]:
        return [t for t in set(api.topics) - before if any(m.buttons for m in api.in_topic(GROUP, t))]

    await api.wait_for(lambda: bool(opened()))
    (topic,) = opened()
    return topic


async def _eventually(
    read: Callable[[], Awaitable[T]], holds: Callable[[T], bool], within: float = 10.0
) -> T:
    """What `read` gives once `holds` is true of it (Redis is written just after Telegram)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await read()
        if holds(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def _case_of_topic(board: TeamBoard, topic: int) -> str:
    """The case of a topic (recorded just after its card is posted)."""
    case_id = await _eventually(lambda: board.case_of_topic(GROUP, topic), lambda found: found is not None)
    assert case_id is not None
    return case_id


async def test_a_flagged_case_gets_a_topic_with_its_card(
    team_bot: BotProcess, api: FakeBotAPI, board: TeamBoard
) -> None:
    patient = _patient(api)
    topic = await _flag_an_emergency(api, patient)
    _, name = api.topics[topic]
    assert "emergency_ambulance" in name
    assert "P-" in name
    card = next(m for m in api.in_topic(GROUP, topic) if m.buttons)
    assert "Flagged case P-" in card.text
    assert "red flag" in card.text
    assert "unconscious" in card.text
    assert "Waiting for a doctor" in card.text
    assert card.data == [f"team:claim:{await _case_of_topic(board, topic)}", card.data[1]]
    # the patient's name and Telegram id are not on the card
    assert str(patient.user_id) not in card.text
    assert "Patient" not in name


async def test_claim_talk_and_close(
    team_bot: BotProcess, api: FakeBotAPI, board: TeamBoard, redis_url: str
) -> None:
    patient = _patient(api)
    topic = await _flag_an_emergency(api, patient)
    case_id = await _case_of_topic(board, topic)
    doctor = api.member(DOCTOR, GROUP)

    await doctor.tap(f"team:claim:{case_id}")
    await api.wait_for(
        lambda: any("Dr Li" in m.text and "joined" in m.text for m in api.sent_to(patient.user_id))
    )
    await api.wait_for(lambda: any("Dr Li has claimed" in m.text for m in api.in_topic(GROUP, topic)))
    await api.wait_for(lambda: any("With Dr Li" in m.text for m in api.in_topic(GROUP, topic)))  # card edited

    # the doctor's words reach the patient as the doctor's; the patient's reach the topic
    await doctor.say(topic, "Is he breathing normally now?")
    await api.wait_for(
        lambda: any(m.text == "Dr Li: Is he breathing normally now?" for m in api.sent_to(patient.user_id))
    )
    before = len(api.sent_to(patient.user_id))
    await patient.send(updates.message(patient.user_id, "yes he is breathing, eyes open now"))
    await api.wait_for(lambda: any("eyes open now" in m.text for m in api.in_topic(GROUP, topic)))
    await patient.send(updates.photo(patient.user_id))
    await api.wait_for(lambda: any(m.copied_from is not None for m in api.in_topic(GROUP, topic)))
    # while the doctor has the case the bot stays quiet: nothing more went to the patient
    assert len(api.sent_to(patient.user_id)) == before

    # safety screening never stops: an emergency is still answered at once, and the doctor sees it
    await patient.say("now he has chest pain and sweating", until=says("120"))
    await api.wait_for(lambda: any("chest pain and sweating" in m.text for m in api.in_topic(GROUP, topic)))

    await doctor.tap(f"team:close:{case_id}")
    await api.wait_for(lambda: any("handed you back" in m.text for m in api.sent_to(patient.user_id)))
    await patient.command("help", until=says("/restart"))  # the bot answers again

    ticket = await board.get(case_id)
    assert ticket is not None
    assert ticket.status is TicketStatus.CLOSED
    assert ticket.claimed_by == "li"
    trail = [(entry.actor, entry.kind) for entry in await board.audit(case_id)]
    assert ("li", "claimed") in trail
    assert ("li", "message") in trail
    assert ("li", "closed") in trail
    redis = Redis.from_url(redis_url)
    try:
        case = await RedisStore(redis).load_case(case_id)
    finally:
        await redis.aclose()
    assert case is not None
    roles = [turn.role for turn in case.transcript]
    assert "doctor" in roles
    assert any(turn.role == "patient" and "eyes open now" in turn.text for turn in case.transcript)


async def test_people_not_on_the_list_and_operators_are_refused(
    team_bot: BotProcess, api: FakeBotAPI, board: TeamBoard
) -> None:
    patient = _patient(api)
    topic = await _flag_an_emergency(api, patient)
    case_id = await _case_of_topic(board, topic)
    alerts = len(api.alerts)
    await api.member(STRANGER, GROUP).tap(f"team:claim:{case_id}")
    await api.wait_for(lambda: len(api.alerts) > alerts)
    assert "not on this team's list" in api.alerts[-1]
    await api.member(OPERATOR, GROUP).tap(f"team:claim:{case_id}")
    await api.wait_for(lambda: len(api.alerts) > alerts + 1)
    assert "operator may not claim" in api.alerts[-1]
    # a stranger writing in the topic reaches nobody
    await api.member(STRANGER, GROUP).say(topic, "hello patient")
    await api.wait_for(lambda: any("Not allowed" in m.text for m in api.in_topic(GROUP, topic)))
    assert not any("hello patient" in m.text for m in api.sent_to(patient.user_id))
    ticket = await board.get(case_id)
    assert ticket is not None
    assert ticket.status is TicketStatus.OPEN
    refused = [(e.actor, e.detail) for e in await board.audit(case_id) if e.kind == "refused"]
    assert (f"tg:{STRANGER}", "claim: You are not on this team's list.") in refused
    assert any(actor == "ops" for actor, _ in refused)
    assert any(actor == f"tg:{STRANGER}" and detail.startswith("message") for actor, detail in refused)


async def test_unclaimed_urgent_cases_are_realerted_to_the_on_call_list(
    team_bot: BotProcess, api: FakeBotAPI, board: TeamBoard
) -> None:
    patient = _patient(api)
    topic = await _flag_an_emergency(api, patient)
    case_id = await _case_of_topic(board, topic)
    await api.wait_for(
        lambda: any("Still unclaimed" in m.text for m in api.in_topic(GROUP, topic)), within=20
    )
    await api.wait_for(
        lambda: any("P-" in m.text and "waited" in m.text for m in api.sent_to(ON_CALL)), within=20
    )
    realert = next(m for m in api.in_topic(GROUP, topic) if "Still unclaimed" in m.text)
    assert "Dr Wang" in realert.text
    trail = await _eventually(lambda: board.audit(case_id), lambda t: any(e.kind == "realert" for e in t))
    assert any(e.kind == "realert" and "wang" in e.detail for e in trail)
    ticket = await board.get(case_id)
    assert ticket is not None
    assert ticket.alerts >= 1
    # once claimed, the re-alerts stop
    await api.member(DOCTOR, GROUP).tap(f"team:claim:{case_id}")
    await api.wait_for(lambda: any("joined" in m.text for m in api.sent_to(patient.user_id)))
    due = await board.due_alerts(timedelta(0))
    assert case_id not in {ticket.case_id for ticket in due}


async def test_a_patients_request_for_a_human_reaches_the_team(
    team_bot: BotProcess, api: FakeBotAPI, board: TeamBoard
) -> None:
    patient = _patient(api)
    await patient.say("I have had a fever since yesterday", until=offers("consent:yes"))
    await patient.tap("consent:yes", until=offers("who:self"))
    topics_before = set(api.topics)
    await patient.command("human", until=says("family-doctor team"))
    topic = await _new_topic_with_card(api, topics_before)
    card = next(m for m in api.in_topic(GROUP, topic) if m.buttons)
    assert "patient asked for a doctor" in card.text
    ticket = await board.get(await _case_of_topic(board, topic))
    assert ticket is not None
    assert not ticket.urgent


async def test_reload_is_for_operators(team_bot: BotProcess, api: FakeBotAPI) -> None:
    before = len(api.sent_to(GROUP))
    await api.push(updates.message(DOCTOR, "/reload", chat_type="supergroup", chat_id=GROUP))
    await api.wait_for(lambda: any("may not reload" in m.text for m in api.sent_to(GROUP)[before:]))
    await api.push(updates.message(OPERATOR, "/reload", chat_type="supergroup", chat_id=GROUP))
    await api.wait_for(lambda: any("no change on disk" in m.text for m in api.sent_to(GROUP)[before:]))
