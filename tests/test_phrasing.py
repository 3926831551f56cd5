"""The model may reword questions and advice; the guard and the template keep it safe."""

from __future__ import annotations

import time

import pytest

from bot.phrasing import AssistantPhraser
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from model import HANG, Assistant, FakeBackend, GenerationQueue
from safety import REGIONS
from storage.memory import MemoryStore
from tests.helpers import Chat, fixture_rules_dir


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


async def _chat(rules: RuleSet, backend: FakeBackend, deadline: float = 2.0) -> tuple[Chat, GenerationQueue]:
    queue = GenerationQueue(backend)
    phraser = AssistantPhraser(Assistant(queue, phrase_deadline_s=deadline, read_answers=False))
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en", phraser=phraser)
    return Chat(service), queue


async def _to_first_question(chat: Chat) -> None:
    await chat.say("I have had a fever")
    await chat.tap("consent:yes")
    await chat.tap("who:self")
    await chat.say("30")


async def test_a_question_goes_out_in_the_model_words(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    backend.enqueue(["Could you tell me whether your neck feels stiff?"])
    chat, queue = await _chat(test_rules, backend)
    try:
        await _to_first_question(chat)
        await chat.tap("sex:F")
        assert chat.last.expect.question_id == "stiff_neck"
        assert chat.last.text == "Could you tell me whether your neck feels stiff?"
        assert "stiff" in backend.prompts[-1].lower()
    finally:
        await queue.aclose()


async def test_a_rejected_wording_falls_back_to_the_template(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    backend.enqueue(["As a doctor, I need to know: is your neck stiff?"])
    chat, queue = await _chat(test_rules, backend)
    try:
        await _to_first_question(chat)
        await chat.tap("sex:F")
        assert chat.last.text == "Is the neck stiff?"
    finally:
        await queue.aclose()


async def test_a_hanging_model_costs_at_most_the_deadline(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    backend.enqueue([HANG])
    chat, queue = await _chat(test_rules, backend, deadline=0.5)
    try:
        await _to_first_question(chat)
        started = time.monotonic()
        await chat.tap("sex:F")
        assert time.monotonic() - started < 2.0
        assert chat.last.text == "Is the neck stiff?"
    finally:
        backend.release()
        await queue.aclose()


async def test_chinese_is_not_handed_to_an_english_only_model(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    chat, queue = await _chat(test_rules, backend)
    try:
        await chat.say("发烧两天了")
        await chat.agree_and_introduce(age="30", sex="F")
        assert chat.last.text == "脖子发硬吗？"
        assert backend.prompts == []
    finally:
        await queue.aclose()


async def test_emergencies_never_wait_for_or_reach_the_model(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    backend.enqueue([HANG] * 10)
    chat, queue = await _chat(test_rules, backend, deadline=5.0)
    try:
        started = time.monotonic()
        replies = await chat.say("crushing chest pain and sweating")
        assert time.monotonic() - started < 0.5
        assert replies[0].purpose == "emergency"
        assert backend.prompts == []
    finally:
        backend.release()
        await queue.aclose()


async def test_advice_keeps_level_reason_safety_net_and_disclaimer(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",))
    backend.enqueue(
        [
            "Is the neck stiff?",
            "How many days has the fever lasted?",
            "How is drinking?",
            "Please rest and drink plenty of fluids.",
        ]
    )
    chat, queue = await _chat(test_rules, backend)
    try:
        await _to_first_question(chat)
        await chat.tap("sex:F")
        await chat.tap("a:stiff_neck:no")
        await chat.tap("a:fever_days:unsure")
        await chat.tap("a:drinking:normal")
        await chat.tap("open:none")
        advice = chat.last
        assert advice.purpose == "advice"
        assert "Please rest and drink plenty of fluids." in advice.text
        assert "Rest and drink fluids." not in advice.text
        assert "My advice:" in advice.text
        assert "See a doctor if it lasts 5 days." in advice.text
        assert "not a diagnosis" in advice.text
    finally:
        await queue.aclose()


async def _reading_chat(rules: RuleSet, backend: FakeBackend) -> tuple[Chat, GenerationQueue]:
    queue = GenerationQueue(backend)
    phraser = AssistantPhraser(
        Assistant(queue, phrase_deadline_s=2.0, read_deadline_s=2.0, read_answers=True)
    )
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="zh", phraser=phraser)
    return Chat(service), queue


async def test_the_model_reads_a_reply_the_lexicon_cannot(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en", "zh"), default="x")  # "x": every rewording is refused
    chat, queue = await _reading_chat(test_rules, backend)
    try:
        await chat.say("发烧")
        await chat.agree_and_introduce(age="30", sex="F")
        await chat.tap("a:stiff_neck:no")
        await chat.tap("a:fever_days:unsure")
        assert chat.last.expect.question_id == "drinking"
        backend.enqueue(['{"answer": "little"}'])
        await chat.say("就喝了小半杯")  # no lexicon term for this: the model reads it
        assert chat.last.expect.kind == "open"
        assert "小半杯" in backend.calls[-1].prompt
    finally:
        await queue.aclose()


async def test_an_invalid_model_reading_is_ignored(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en", "zh"), default="x")
    chat, queue = await _reading_chat(test_rules, backend)
    try:
        await chat.say("发烧")
        await chat.agree_and_introduce(age="30", sex="F")
        await chat.tap("a:stiff_neck:no")
        await chat.tap("a:fever_days:unsure")
        backend.enqueue(['{"answer": "plenty"}'])  # not a choice of this question
        await chat.say("就喝了小半杯")
        assert chat.last.expect.question_id == "drinking"  # asked again, with a hint
    finally:
        await queue.aclose()


async def test_questions_keep_their_wording_when_only_advice_may_be_reworded(test_rules: RuleSet) -> None:
    backend = FakeBackend(languages=("en",), default="Could you tell me whether your neck feels stiff?")
    queue = GenerationQueue(backend)
    phraser = AssistantPhraser(Assistant(queue, phrase_deadline_s=2.0, read_answers=False))
    service = ConsultationService(
        test_rules,
        MemoryStore(),
        REGIONS["cn"],
        default_lang="en",
        phraser=phraser,
        phrase_kinds=frozenset({"advice"}),
    )
    chat = Chat(service)
    try:
        await _to_first_question(chat)
        await chat.tap("sex:F")
        assert chat.last.text == "Is the neck stiff?"
        assert backend.prompts == []
    finally:
        await queue.aclose()
