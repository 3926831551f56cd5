"""The consultation service end to end on the engine-test protocols (tests/fixtures/rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.states import State
from safety import REGIONS, Level
from storage.memory import MemoryStore
from tests.helpers import Chat, fixture_rules_dir


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def chat(test_rules: RuleSet, store: MemoryStore) -> Chat:
    return Chat(ConsultationService(test_rules, store, REGIONS["cn"], default_lang="en"))


async def test_a_whole_consultation_in_english(chat: Chat) -> None:
    first = await chat.say("I have had a fever since yesterday")
    assert first[-1].purpose == "consent"
    assert "I am not a doctor" in first[-1].text
    assert "120" in first[-1].text
    await chat.tap("consent:yes")
    assert chat.last.expect.kind == "who"
    await chat.tap("who:self")
    assert chat.last.expect.kind == "age"
    await chat.say("34")
    await chat.tap("sex:F")
    assert chat.last.expect.question_id == "stiff_neck"  # the emergency question comes first
    await chat.tap("a:stiff_neck:no")
    assert chat.last.expect.question_id == "drinking"
    await chat.say("as usual")
    assert chat.last.expect.kind == "open"
    await chat.tap("open:none")
    advice = chat.last
    assert advice.purpose == "advice"
    assert advice.triage is not None
    assert advice.triage.level is Level.SELF_CARE
    assert advice.triage.rule == "fever_test.base"
    assert "Rest and drink fluids." in advice.text
    assert "See a doctor if it lasts 5 days." in advice.text
    assert "not a diagnosis" in advice.text  # the disclaimer, added by code
    assert "fever_days" not in chat.asked()  # "since yesterday" answered it


async def test_a_consultation_in_chinese_with_free_text_answers(chat: Chat) -> None:
    await chat.say("孩子发烧三天了，烧到39度")
    assert chat.last.lang == "zh"
    await chat.tap("consent:yes")
    assert chat.last.expect.kind == "age"  # who = child came from the text
    await chat.say("两岁")
    await chat.tap("sex:M")
    assert chat.last.expect.question_id == "stiff_neck"
    await chat.say("没有")
    await chat.say("比平时少")
    await chat.say("没有了")
    advice = chat.last
    assert advice.triage is not None
    assert advice.triage.level is Level.CONSULTATION_24
    assert "今天看医生" in advice.text
    assert "temperature" not in chat.asked()
    assert "fever_days" not in chat.asked()


async def test_no_question_is_asked_twice_even_after_unreadable_replies(chat: Chat) -> None:
    await chat.say("fever")
    await chat.agree_and_introduce(age="40", sex="M")
    for _ in range(12):
        if chat.last.purpose == "advice":
            break
        await chat.say("purple elephant")
    assert chat.last.purpose == "advice"  # never stuck
    asked = chat.asked()
    assert set(asked) == {"stiff_neck", "fever_days", "drinking"}
    # each asked once, then once more with a hint; after that `unsure` is recorded
    assert all(asked.count(q) == 2 for q in asked), asked


async def test_what_the_patient_already_said_is_not_asked(chat: Chat) -> None:
    await chat.say("fever 38.5 for 2 days, no stiff neck, drinking less")
    await chat.agree_and_introduce(age="30", sex="F")
    assert chat.asked() == []
    assert chat.last.expect.kind == "open"


async def test_emergency_goes_out_before_consent_and_is_escalated(chat: Chat, store: MemoryStore) -> None:
    replies = await chat.say("crushing chest pain and I'm sweating")
    emergency = replies[0]
    assert emergency.purpose == "emergency"
    assert emergency.urgent
    assert emergency.text.startswith("⚠️")
    assert "120" in emergency.text.split("\n")[0]
    assert "Stay with the person." in emergency.text
    assert emergency.triage is not None
    assert emergency.triage.level is Level.EMERGENCY_AMBULANCE
    assert chat.escalations[0].reason == "red_flag"
    assert chat.escalations[0].priority == 0
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.state is State.EMERGENCY


async def test_findings_combine_across_messages(chat: Chat) -> None:
    await chat.say("my son has a fever")
    await chat.tap("consent:yes")
    await chat.say("4")
    await chat.tap("sex:M")
    replies = await chat.say("now his neck is stiff")
    assert replies[0].purpose == "emergency"
    assert replies[0].triage is not None
    assert "meningitis_signs" in replies[0].triage.flags


async def test_a_yes_button_counts_as_a_finding_for_the_screen(chat: Chat) -> None:
    await chat.say("fever")
    await chat.agree_and_introduce(age="30", sex="M")
    replies = await chat.tap("a:stiff_neck:yes")
    assert replies[0].purpose == "emergency"


async def test_young_infant_with_fever_is_an_emergency(chat: Chat) -> None:
    replies = await chat.say("my 6 week old baby has a temperature of 38.2")
    assert replies[0].purpose == "emergency"
    assert replies[0].triage is not None
    assert replies[0].triage.flags == ("infant_fever",)


async def test_crisis_reply_puts_the_line_first_and_stays_private(chat: Chat, store: MemoryStore) -> None:
    replies = await chat.say("活着没意思，不想活了")
    crisis = replies[0]
    assert crisis.purpose == "crisis"
    first_two_sentences = "。".join(crisis.text.split("。")[:2])
    assert "12356" in first_two_sentences
    assert chat.escalations[0].reason == "crisis"
    assert chat.escalations[0].priority == 0
    follow = await chat.say("我也不知道该怎么办")
    assert follow[0].purpose == "crisis"
    assert "12356" in follow[0].text
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.case is not None
    patient_turns = [t for t in session.case.transcript if t.role == "patient"]
    assert patient_turns
    assert all(t.private for t in patient_turns)


async def test_a_denied_crisis_gets_a_direct_question_not_silence(chat: Chat) -> None:
    await chat.say("cough")
    await chat.agree_and_introduce(age="30", sex="M")
    replies = await chat.say("I don't want to kill myself, I just can't sleep with this cough")
    assert replies[-1].purpose == "safety"
    assert "ending your life" in replies[-1].text
    await chat.tap("safety:no")
    assert chat.last.purpose == "question"
    assert chat.last.expect.question_id == "cough_weeks"


async def test_a_denied_crisis_after_the_advice_keeps_the_advice(chat: Chat) -> None:
    await chat.say("I have had a fever since yesterday")
    await chat.agree_and_introduce(age="34", sex="F")
    await chat.tap("a:stiff_neck:no")
    await chat.say("as usual")
    await chat.tap("open:none")
    assert chat.last.purpose == "advice"
    asked = await chat.say("I don't want to kill myself, just asking about the fever")
    assert asked[-1].purpose == "safety"
    replies = await chat.tap("safety:no")
    assert [r.purpose for r in replies] == ["info"]
    assert "I've given my advice" in replies[0].text


async def test_a_not_sure_answer_follows_what_the_patient_writes_later(chat: Chat) -> None:
    await chat.say("I have had a fever since yesterday")
    await chat.agree_and_introduce(age="34", sex="F")
    await chat.tap("a:stiff_neck:no")
    await chat.tap("a:drinking:unsure")  # not sure: a doctor today
    assert chat.last.expect.kind == "open"
    await chat.say("actually she is drinking fine")
    await chat.tap("open:none")
    assert chat.last.triage is not None
    assert chat.last.triage.level is Level.SELF_CARE
    assert chat.last.triage.rule == "fever_test.base"


async def test_a_not_sure_danger_sign_stated_later_raises_the_level(chat: Chat) -> None:
    await chat.say("I have a fever")
    await chat.agree_and_introduce(age="34", sex="F")
    await chat.tap("a:stiff_neck:no")
    await chat.say("as usual")
    assert chat.last.expect.question_id == "fever_days"
    await chat.tap("a:fever_days:unsure")
    await chat.say("I counted, it has been 6 days")
    await chat.tap("open:none")
    assert chat.last.triage is not None
    assert chat.last.triage.level is Level.CONSULTATION_24
    assert chat.last.triage.rule == "fever_test.long"


async def test_yes_to_the_safety_question_is_a_crisis(chat: Chat) -> None:
    await chat.say("cough")
    await chat.tap("consent:yes")
    await chat.say("not that I want to kill myself")
    replies = await chat.say("yes")
    assert replies[0].purpose == "crisis"


async def test_declining_consent_keeps_nothing(chat: Chat, store: MemoryStore) -> None:
    await chat.say("I have a fever")
    await chat.tap("consent:no")
    assert "not kept" in chat.last.text
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.case is None
    assert session.held_text is None
    assert store.cases == {}


async def test_no_health_question_before_consent(chat: Chat) -> None:
    for text in ("fever", "38.5", "my neck hurts", "what now?"):
        replies = await chat.say(text)
        assert all(r.expect.kind in ("consent", "none") for r in replies), replies


async def test_malformed_buttons_get_a_clear_answer(chat: Chat) -> None:
    await chat.say("fever")
    await chat.tap("consent:yes")
    for data in ("a:no_such_question:yes", "a:stiff_neck:maybe", "zzz", "", "a::", "p:../../etc"):
        replies = await chat.tap(data)
        assert replies, data
        assert all("Traceback" not in r.text for r in replies)


async def test_the_level_never_goes_down_after_a_red_flag(chat: Chat) -> None:
    await chat.say("chest pain and sweating")
    await chat.say("actually it's just a mild cough")
    replies = await chat.say("I feel fine now")
    assert all(r.triage is None or r.triage.level is Level.EMERGENCY_AMBULANCE for r in replies)


async def test_restart_starts_a_new_case(chat: Chat, store: MemoryStore) -> None:
    await chat.say("fever")
    await chat.tap("consent:yes")
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.case is not None
    first_case = session.case.case_id
    await chat.command("restart")
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.case is not None
    assert session.case.case_id != first_case
    assert chat.last.expect.kind == "who"


async def test_human_request_escalates(chat: Chat) -> None:
    await chat.say("fever")
    await chat.tap("consent:yes")
    await chat.command("human")
    assert chat.escalations[-1].reason == "patient_request"
    assert "team" in chat.last.text


async def test_media_gets_a_clear_answer_and_the_question_again(chat: Chat) -> None:
    await chat.say("fever")
    await chat.tap("consent:yes")
    from dialog.events import Inbound

    replies = await chat.service.handle(Inbound(patient_id=chat.patient_id, kind="media", media="sticker"))
    texts = [getattr(r, "text", "") for r in replies]
    assert any("only read text" in t for t in texts)
    assert texts[-1] == "Who is this about?"  # and the pending question again


async def test_unmatched_complaint_falls_back_after_asking_again(chat: Chat) -> None:
    await chat.say("hello")
    await chat.agree_and_introduce(age="50", sex="F")
    assert chat.last.expect.kind == "complaint"
    await chat.say("something is off with my toe nail colour")
    assert chat.last.expect.kind == "complaint"
    assert any(b.data.startswith("p:") for b in chat.last.buttons)
    await chat.say("hard to say really")
    assert chat.escalations[-1].reason == "low_confidence"


def test_fixture_rules_stay_small(test_rules: RuleSet, tmp_path: Path) -> None:
    assert set(test_rules.protocols) == {"fever_test", "cough_test", "general"}


async def test_screen_only_answers_emergencies_and_nothing_else(chat: Chat) -> None:
    from dialog.events import Inbound, Reply

    quiet = await chat.service.screen_only(Inbound(patient_id="flood", kind="text", text="fever fever fever"))
    assert quiet == []
    loud = await chat.service.screen_only(Inbound(patient_id="flood", kind="text", text="he is unconscious"))
    replies = [a for a in loud if isinstance(a, Reply)]
    assert replies[0].purpose == "emergency"


async def test_an_unreachable_patient_closes_the_case_quietly(chat: Chat, store: MemoryStore) -> None:
    await chat.say("fever")
    await chat.tap("consent:yes")
    await chat.service.patient_unreachable(chat.patient_id)
    session = await store.load(chat.patient_id)
    assert session is not None
    assert session.state is State.CLOSED
    assert session.case is not None  # nothing deleted
    assert session.case.transcript[-1].role == "system"


async def test_an_unsure_danger_sign_is_named_in_the_advice_with_what_to_do(chat: Chat) -> None:
    await chat.say("I have had a fever since yesterday")
    await chat.tap("consent:yes")
    await chat.tap("who:self")
    await chat.say("34")
    await chat.tap("sex:F")
    stiff_neck = chat.last.text
    await chat.tap("a:stiff_neck:unsure")
    await chat.say("as usual")
    await chat.tap("open:none")
    advice = chat.last
    assert advice.triage is not None
    unsure_block = advice.text.split("You weren't sure about the following")[1]
    assert stiff_neck.strip() in unsure_block
    assert "Go to an emergency department now" in unsure_block.split("\n\n")[0]  # what that sign would mean


async def test_advice_names_no_unsure_sign_when_every_answer_was_clear(chat: Chat) -> None:
    await chat.say("I have had a fever since yesterday")
    await chat.tap("consent:yes")
    await chat.tap("who:self")
    await chat.say("34")
    await chat.tap("sex:F")
    await chat.tap("a:stiff_neck:no")
    await chat.say("as usual")
    await chat.tap("open:none")
    assert "You weren't sure" not in chat.last.text
