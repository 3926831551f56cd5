"""The three model jobs and the Assistant facade, over the fake backend: what is sent, what is
accepted, and when the caller is told to use its template."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from model import (
    HANG,
    AnswerChoice,
    Assistant,
    CaseSummary,
    FakeBackend,
    GenerationQueue,
    Outcome,
    PhrasePlan,
    QuestionAnswer,
    ReadRequest,
    phrase,
    read_answer,
    sbar,
)
from model.tasks import SBAR_SCHEMA, answer_schema, clean_output

QUESTION = PhrasePlan(kind="question", lang="en", text="Have you had a temperature above 38°C?")
ADVICE_TEXT = (
    "See a doctor within 24 hours. Your symptoms need a check today or tomorrow. "
    "Call 120 at once if you have trouble breathing or chest pain."
)
ADVICE = PhrasePlan(kind="advice", lang="en", text=ADVICE_TEXT)
YES_NO = ReadRequest(
    question="Do you have a fever?", kind="yes_no", lang="en", patient_text="yeah burning up since last night"
)
CHOICE = ReadRequest(
    question="How does the heartbeat feel?",
    kind="choice",
    lang="en",
    patient_text="like it's racing",
    choices=(AnswerChoice(id="fast", label="Fast"), AnswerChoice(id="irregular", label="Irregular")),
)
NUMBER = ReadRequest(
    question="How many days?", kind="number", lang="en", patient_text="about 3 days", unit="days", maximum=365
)
CASE = CaseSummary(
    lang="en",
    level="see a doctor within 24 hours",
    rule="cough.fever_3_days",
    reason="a cough with fever for more than 3 days",
    who="self",
    age="34",
    sex="F",
    complaint="bad cough and fever",
    findings=("cough", "fever"),
    answers=(QuestionAnswer(question="How many days?", answer="5"),),
)
NOTE = {
    "situation": "A 34-year-old woman with a cough and fever.",
    "background": "Symptoms for 5 days.",
    "assessment": "Cough with fever for more than 3 days.",
    "recommendation": "Review within 24 hours.",
}


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


# ---- phrasing --------------------------------------------------------------------------


async def test_phrase_sends_the_template_and_returns_the_cleaned_text() -> None:
    fake = FakeBackend(['Rephrased question: "Have you had a temperature over 38°C at any time?"'])
    assert await phrase(fake, QUESTION) == "Have you had a temperature over 38°C at any time?"
    call = fake.calls[0]
    assert call.messages[0].role == "system"
    assert call.messages[-1].role == "user"
    assert call.messages[-1].content.endswith(QUESTION.text)
    assert call.json_schema is None
    assert 0 < call.options.max_tokens <= 1024


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("<think>The patient may have a fever.</think>", "only reasoning"),
        ("You might have a temperature above 38°C.", "no longer a question"),
        ("Have you had a temperature above 39°C?", "a number changed"),
        ("Have you had a temperature above 38°C for 2 days?", "a number was added"),
        ("Have you had a temperature above 38°C and also", "cut off"),
        ("Does the pain get worse when you take a breath in?", "a different question"),
        ("Have you had a temperature above 38°C? " + "Please tell me. " * 20, "too long"),
    ],
)
async def test_phrase_declines_output_that_may_not_replace_the_template(reply: str, why: str) -> None:
    assert await phrase(FakeBackend([reply]), QUESTION) is None, why


async def test_phrase_keeps_reasoning_out_and_accepts_advice_that_keeps_the_numbers() -> None:
    warm = (
        "<think>keep it calm</think>Please see a doctor within the next 24 hours, today or tomorrow, "
        "so your symptoms get checked. If you have trouble breathing or chest pain, call 120 at once."
    )
    text = await phrase(FakeBackend([warm]), ADVICE)
    assert text is not None
    assert text.startswith("Please see a doctor")
    assert "<think>" not in text
    assert await phrase(FakeBackend(["See a doctor."]), ADVICE) is None  # dropped the safety net


async def test_phrase_does_not_ask_a_backend_that_does_not_speak_the_language() -> None:
    fake = FakeBackend(["你好？"], languages={"en"})
    plan = PhrasePlan(kind="question", lang="zh", text="你的体温有没有超过38°C？")
    assert await phrase(fake, plan) is None
    assert fake.calls == []


def test_clean_output_strips_labels_quotes_and_reasoning() -> None:
    assert clean_output("  「您发烧吗？」 ") == "您发烧吗？"
    assert clean_output("改写后的问题：您发烧吗？") == "您发烧吗？"
    assert clean_output("Here is the rewritten question: Do you have a fever?") == "Do you have a fever?"
    assert clean_output("<think>unfinished") == ""
    assert clean_output("Question marks matter: why?") == "Question marks matter: why?"


# ---- reading free text -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reply", "value"),
    [
        (YES_NO, '{"answer": "yes"}', "yes"),
        (YES_NO, '{"answer": "unsure"}', "unsure"),
        (CHOICE, '{"answer": "fast"}', "fast"),
        (NUMBER, '{"answer": 3}', 3.0),
        (NUMBER, '<think>3 days</think> {"answer": 2.5} ', 2.5),
        (NUMBER, '{"answer": "unsure"}', "unsure"),
    ],
)
async def test_read_answer_returns_validated_answers(
    request_: ReadRequest, reply: str, value: object
) -> None:
    fake = FakeBackend([reply])
    answer = await read_answer(fake, request_)
    assert answer is not None
    assert answer.value == value
    assert answer.kind == request_.kind
    assert answer.unsure == (value == "unsure")
    assert fake.calls[0].json_schema == answer_schema(request_)
    assert request_.patient_text in fake.calls[0].messages[-1].content


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        (YES_NO, "yes"),
        (YES_NO, '{"answer": "maybe"}'),
        (YES_NO, '{"answer": "yes", "level": "emergency"}'),
        (YES_NO, '{"answer": true}'),
        (YES_NO, "[1, 2]"),
        (CHOICE, '{"answer": "slow"}'),
        (NUMBER, '{"answer": "three"}'),
        (NUMBER, '{"answer": 400}'),
        (NUMBER, '{"answer": NaN}'),
        (NUMBER, '{"answer": 3'),
    ],
)
async def test_read_answer_returns_none_when_the_output_does_not_validate(
    request_: ReadRequest, reply: str
) -> None:
    assert await read_answer(FakeBackend([reply]), request_) is None


def test_answer_schemas_allow_exactly_the_valid_answers() -> None:
    assert answer_schema(YES_NO)["properties"]["answer"]["enum"] == ["yes", "no", "unsure"]
    assert answer_schema(CHOICE)["properties"]["answer"]["enum"] == ["fast", "irregular", "unsure"]
    assert answer_schema(NUMBER)["properties"]["answer"]["anyOf"][0] == {"type": "number"}
    assert all(schema["additionalProperties"] is False for schema in map(answer_schema, (YES_NO, NUMBER)))


def test_read_requests_are_checked() -> None:
    with pytest.raises(ValidationError, match="at least two choices"):
        ReadRequest(question="q", kind="choice", lang="en", patient_text="x")
    with pytest.raises(ValidationError, match="only choice"):
        ReadRequest(
            question="q",
            kind="yes_no",
            lang="en",
            patient_text="x",
            choices=(AnswerChoice(id="a", label="A"),),
        )
    with pytest.raises(ValidationError, match="unique"):
        ReadRequest(
            question="q",
            kind="choice",
            lang="en",
            patient_text="x",
            choices=(AnswerChoice(id="unsure", label="?"), AnswerChoice(id="b", label="B")),
        )


# ---- the SBAR note ---------------------------------------------------------------------


async def test_sbar_renders_the_four_parts_and_attaches_the_engines_level() -> None:
    fake = FakeBackend([json.dumps(NOTE)])
    note = await sbar(fake, CASE)
    assert note is not None
    lines = note.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [
        "S (Situation)",
        "B (Background)",
        "A (Assessment)",
        "R (Recommendation)",
    ]
    assert lines[-1] == "Triage level (rules engine, rule cough.fever_3_days): see a doctor within 24 hours"
    facts = fake.calls[0].messages[-1].content
    assert "bad cough and fever" in facts
    assert "cough, fever" in facts
    assert "How many days? 5" in facts
    assert fake.calls[0].json_schema == SBAR_SCHEMA
    assert "level" not in json.dumps(SBAR_SCHEMA)  # the model is never asked for a level


async def test_sbar_in_chinese_and_its_failures() -> None:
    zh_case = CASE.model_copy(update={"lang": "zh", "level": "24小时内就医"})
    note = await sbar(FakeBackend([json.dumps(NOTE)]), zh_case)
    assert note is not None
    assert note.startswith("S（现状）：")
    assert note.endswith("24小时内就医")
    assert await sbar(FakeBackend(["not json"]), CASE) is None
    assert await sbar(FakeBackend([json.dumps({**NOTE, "assessment": ""})]), CASE) is None
    english_only = FakeBackend([json.dumps(NOTE)], languages={"en"})
    assert await sbar(english_only, zh_case) is None
    assert english_only.calls == []


# ---- the Assistant facade --------------------------------------------------------------


async def test_the_assistant_runs_jobs_through_the_queue() -> None:
    fake = FakeBackend(["Have you had a temperature over 38°C at any point?", '{"answer": "no"}'])
    async with GenerationQueue(fake) as queue:
        assistant = Assistant(queue)
        phrased = await assistant.phrase(QUESTION, key="p1")
        assert phrased.ok
        assert phrased.value == "Have you had a temperature over 38°C at any point?"
        read = await assistant.read_answer(YES_NO, key="p1")
        assert read.ok
        assert read.value is not None
        assert read.value.value == "no"
        assert assistant.speaks("en")
        assert assistant.backend is fake
        calls = len(fake.calls)
        off = await Assistant(queue, read_answers=False).read_answer(YES_NO)
        assert off.outcome is Outcome.DECLINED
        assert len(fake.calls) == calls


async def test_the_assistant_answers_at_once_when_there_is_nothing_to_ask() -> None:
    no_model = Assistant(None)
    assert (await no_model.phrase(QUESTION)).outcome is Outcome.UNAVAILABLE
    assert not no_model.speaks("en")
    assert no_model.cancel("p1") == 0
    fake = FakeBackend(languages={"en"})
    async with GenerationQueue(fake) as queue:
        plan = PhrasePlan(kind="question", lang="zh", text="你发烧吗？")
        result = await Assistant(queue).phrase(plan)
        assert result.outcome is Outcome.DECLINED
        assert result.value_or("你发烧吗？") == "你发烧吗？"
        assert fake.calls == []


async def test_the_assistant_turns_a_full_queue_and_a_slow_model_into_results() -> None:
    fake = FakeBackend([HANG])
    async with GenerationQueue(fake, max_pending=1) as queue:
        assistant = Assistant(queue, phrase_deadline_s=0.05)
        busy = asyncio.create_task(assistant.sbar(CASE, key="doctor"))
        await until(lambda: fake.active == 1)
        waiting = asyncio.create_task(assistant.phrase(QUESTION, key="p1", deadline_s=5))
        await until(lambda: queue.pending == 1)
        full = await assistant.phrase(QUESTION, key="p2")
        assert full.outcome is Outcome.REJECTED
        assert assistant.cancel("p1") == 1
        assert (await waiting).outcome is Outcome.CANCELLED
        t0 = time.monotonic()
        slow = await assistant.phrase(QUESTION, key="p3")
        assert slow.outcome is Outcome.TIMEOUT
        assert time.monotonic() - t0 < 0.5
        assistant.cancel("doctor")
        assert (await busy).outcome is Outcome.CANCELLED
