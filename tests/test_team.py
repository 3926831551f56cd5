"""The doctor team's rules and board: routing, who may do what, tickets on real Redis (claims that
race, re-flagging, the outbox and its redelivery, re-alert timing, /forget), and the handoff in
the consultation service (the bot stays quiet, relays, keeps screening, hands back)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from dialog.events import Escalation, Inbound, Relay, Reply
from dialog.service import ConsultationService
from dialog.session import Case, utcnow
from dialog.states import State
from dialog.team import Member, Refusal, Role, Roster, Team, TicketStatus
from safety import REGIONS, Level
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard
from tests.helpers import Chat

LI = Member(id="li", name="Dr Li", role=Role.DOCTOR, telegram_id=1)
WANG = Member(id="wang", name="Dr Wang", role=Role.DOCTOR, telegram_id=2)
OPS = Member(id="ops", name="Ops", role=Role.OPERATOR, telegram_id=3)


def _escalation(case_id: str = "c1", reason: str = "red_flag", level: Level = Level.EMERGENCY) -> Escalation:
    return Escalation(
        case_id=case_id,
        patient_id=f"tg:{case_id}",
        reason=reason,  # type: ignore[arg-type]
        priority=0 if reason in ("red_flag", "crisis") else 2,
        level=level,
        flags=("chest_pain_sweating",) if reason == "red_flag" else (),
    )


@pytest.fixture
async def board(redis: Redis, key_prefix: str) -> TeamBoard:
    yield TeamBoard(redis, prefix=key_prefix)  # type: ignore[misc]
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)


# ---- roster and routing -----------------------------------------------------------------------


def test_routing_takes_the_first_team_that_admits_the_case() -> None:
    roster = Roster(
        teams=(
            Team(name="crisis", reasons=("crisis",)),
            Team(name="english", languages=("en",)),
            Team(name="urgent", min_level=Level.EMERGENCY),
            Team(name="general"),
        )
    )
    assert roster.route(_escalation(reason="crisis"), "zh").name == "crisis"  # type: ignore[union-attr]
    assert roster.route(_escalation(), "en").name == "english"  # type: ignore[union-attr]
    assert roster.route(_escalation(reason="level"), "zh").name == "urgent"  # type: ignore[union-attr]
    low = _escalation(reason="level", level=Level.CONSULTATION_24)
    assert roster.route(low, "zh").name == "general"  # type: ignore[union-attr]
    assert Roster().route(low, "zh") is None


def test_a_roster_refuses_doubled_ids_and_unknown_on_call_members() -> None:
    with pytest.raises(ValidationError, match="member id used twice"):
        Roster(teams=(Team(name="a", members=(LI,)), Team(name="b", members=(LI,))))
    with pytest.raises(ValidationError, match="unknown members: nobody"):
        Team(name="a", members=(LI,), on_call=("nobody",))


def test_roles_decide_what_a_member_may_do() -> None:
    assert LI.may("claim")
    assert LI.may("message")
    assert LI.may("note")
    assert not OPS.may("claim")
    assert not OPS.may("message")
    assert OPS.may("note")
    assert OPS.may("reload")


# ---- the board on Redis ------------------------------------------------------------------------


async def test_two_doctors_claiming_at_once_one_wins(board: TeamBoard) -> None:
    await board.flag(_escalation(), "east", None, "en")
    results = await asyncio.gather(
        board.claim("c1", LI, via="telegram"),
        board.claim("c1", WANG, via="dashboard"),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, Refusal)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert "already claimed" in str(losers[0])
    actions = await board.actions("test-consumer", block_ms=10)
    assert [a.kind for _, a in actions] == ["claimed"]
    assert [e.kind for e in await board.audit("c1")] == ["flagged", "claimed"]


async def test_a_later_escalation_folds_into_the_ticket_and_closing_reopens_it(board: TeamBoard) -> None:
    first, new = await board.flag(
        _escalation(reason="level", level=Level.CONSULTATION_24), "east", None, "zh"
    )
    assert new
    assert first.priority == 2
    assert not first.urgent
    second, new = await board.flag(_escalation(), "east", None, "zh")
    assert not new
    assert second.reasons == ["level", "red_flag"]
    assert second.priority == 0
    assert second.urgent
    assert second.level is Level.EMERGENCY
    assert second.flags == ["chest_pain_sweating"]
    await board.claim("c1", LI, via="telegram")
    closed = await board.close("c1", LI, via="telegram")
    assert closed.status is TicketStatus.CLOSED
    with pytest.raises(Refusal, match="closed"):
        await board.claim("c1", WANG, via="telegram")
    reopened, new = await board.flag(_escalation(reason="patient_request"), "east", None, "zh")
    assert new
    assert reopened.status is TicketStatus.OPEN
    assert reopened.reasons == ["patient_request"]


async def test_operators_and_strangers_are_refused_and_only_the_claimant_writes(board: TeamBoard) -> None:
    await board.flag(_escalation(), "east", None, "en")
    with pytest.raises(Refusal, match="operator may not claim"):
        await board.claim("c1", OPS, via="dashboard")
    with pytest.raises(Refusal, match="claim the case"):
        await board.message("c1", LI, "hello", via="telegram")
    await board.claim("c1", LI, via="telegram")
    with pytest.raises(Refusal, match="claim the case"):
        await board.message("c1", WANG, "I am here too", via="telegram")
    question = "How are you now?"
    await board.message("c1", LI, question, via="telegram")
    await board.note("c1", OPS, "called the family", via="dashboard")
    trail = await board.audit("c1")
    assert [(e.actor, e.kind) for e in trail][-2:] == [("li", "message"), ("ops", "note")]
    assert trail[-2].detail == f"{len(question)} chars"  # messages are in the transcript, not the audit trail
    with pytest.raises(LookupError):
        await board.claim("no-such-case", LI, via="telegram")


async def test_an_action_a_crashed_bot_did_not_finish_is_delivered_again(board: TeamBoard) -> None:
    await board.flag(_escalation(), "east", None, "en")
    await board.claim("c1", LI, via="telegram")
    taken = await board.actions("bot-1", block_ms=10)
    assert len(taken) == 1
    again = await board.actions("bot-1", block_ms=10)  # not acknowledged: it comes back
    assert [entry for entry, _ in again] == [entry for entry, _ in taken]
    await board.done(taken[0][0])
    assert await board.actions("bot-1", block_ms=10) == []


async def test_only_unclaimed_urgent_cases_fall_due_for_a_realert(board: TeamBoard) -> None:
    await board.flag(_escalation("urgent"), "east", None, "en")
    await board.flag(_escalation("routine", reason="level", level=Level.CONSULTATION_24), "east", None, "en")
    later = utcnow() + timedelta(minutes=6)
    assert [t.case_id for t in await board.due_alerts(timedelta(minutes=5), now=later)] == ["urgent"]
    assert await board.due_alerts(timedelta(minutes=5)) == []  # not yet
    await board.alerted("urgent", "on call: wang")
    assert await board.due_alerts(timedelta(minutes=5), now=utcnow() + timedelta(minutes=4)) == []
    await board.claim("urgent", LI, via="telegram")
    assert await board.due_alerts(timedelta(0), now=later + timedelta(hours=1)) == []


async def test_one_time_login_tokens_work_once(board: TeamBoard) -> None:
    token = await board.issue_login_token("li", ttl=timedelta(minutes=5))
    assert await board.redeem_login_token(token) == "li"
    assert await board.redeem_login_token(token) is None


# ---- the handoff in the consultation service ----------------------------------------------------


async def test_a_doctor_takes_over_the_chat_and_hands_it_back(rules: object, redis_store: RedisStore) -> None:
    from dialog.ruleset import RuleSet

    assert isinstance(rules, RuleSet)
    service = ConsultationService(rules, redis_store, REGIONS["cn"], default_lang="en")
    chat = Chat(service, patient_id="tg:5")
    await chat.say("I have had a cough for a week")
    await chat.agree_and_introduce(age="40", sex="F")
    joined = await service.doctor_joined("tg:5", "Dr Li")
    assert [r.purpose for r in joined if isinstance(r, Reply)] == ["doctor"]
    assert "Dr Li" in joined[0].text  # type: ignore[union-attr]

    quiet = await service.handle(Inbound(patient_id="tg:5", kind="text", text="it is worse at night"))
    assert [type(a) for a in quiet] == [Relay]
    photo = await service.handle(Inbound(patient_id="tg:5", kind="media", media="photo"))
    assert [(type(a), a.media) for a in photo] == [(Relay, "photo")]  # type: ignore[union-attr]
    refused = await service.handle(Inbound(patient_id="tg:5", kind="command", command="restart"))
    assert "hand you back" in refused[0].text  # type: ignore[union-attr]

    said = await service.doctor_says("tg:5", "Dr Li", "Any fever?")
    assert said[0].text == "Dr Li: Any fever?"  # type: ignore[union-attr]

    # an emergency is answered at once even with the doctor there, and the doctor sees it
    alarm = await service.handle(
        Inbound(patient_id="tg:5", kind="text", text="now crushing chest pain and sweating")
    )
    assert any(isinstance(a, Reply) and a.purpose == "emergency" for a in alarm)
    assert any(isinstance(a, Relay) for a in alarm)
    session = await redis_store.load("tg:5")
    assert session is not None
    assert session.state is State.HANDOFF

    left = await service.doctor_left("tg:5", "Dr Li")
    assert "handed you back" in left[0].text  # type: ignore[union-attr]
    session = await redis_store.load("tg:5")
    assert session is not None
    assert session.state is State.ADVICE
    assert session.case is not None
    roles = [turn.role for turn in session.case.transcript]
    assert "doctor" in roles
    assert roles.count("system") >= 2


async def test_forget_removes_the_patients_tickets_and_audit_trail(
    redis: Redis, key_prefix: str, redis_store: RedisStore
) -> None:
    board = TeamBoard(redis, prefix=key_prefix)
    case = Case(case_id="c9", patient_id="tg:c9", rules_version="v")
    await redis_store.save_case(case)
    await board.flag(_escalation("c9"), "east", case, "en")
    await board.set_topic("c9", -100, 77, 5)
    assert await board.case_of_topic(-100, 77) == "c9"
    await redis_store.forget("tg:c9")
    assert await board.get("c9") is None
    assert await board.audit("c9") == []
    assert await board.case_of_topic(-100, 77) is None
    assert [t.case_id for t in await board.tickets()] == []


async def test_the_card_summary_is_written_from_the_cases_facts_and_never_for_a_crisis() -> None:
    import json

    from bot.phrasing import AssistantPhraser
    from model import Assistant, FakeBackend, GenerationQueue

    note = {"situation": "Cough for a week.", "background": "40, female.", "assessment": "No red flags.",
            "recommendation": "Routine review."}  # fmt: skip
    backend = FakeBackend([json.dumps(note)], languages=("en",))
    queue = GenerationQueue(backend)
    phraser = AssistantPhraser(Assistant(queue))
    case = Case(case_id="c5", patient_id="tg:5", rules_version="v", complaint="cough for a week", age=40.0)
    case.raise_level(Level.CONSULTATION, "cough.base")
    case.answers["cough_days"] = 7.0
    summary = await phraser.summarise(case, "en")
    assert summary is not None
    assert "Cough for a week." in summary
    assert "cough.base" in summary
    facts = backend.calls[0].messages[-1].content
    assert "cough for a week" in facts
    assert "cough_days 7" in facts
    assert await phraser.summarise(case, "zh") is None  # the backend does not write Chinese
    crisis = case.model_copy(update={"crisis": True})
    assert await phraser.summarise(crisis, "en") is None
    assert len(backend.calls) == 1  # a crisis case never reaches the model
    await queue.aclose()
