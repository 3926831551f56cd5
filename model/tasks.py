"""The three jobs the model does, each from plain pydantic inputs defined here.

1. `phrase`: say the engine's next question or its advice warmly and briefly in the patient's
   language, never adding facts. The text comes back only when it passes the task's own checks
   (complete, still a question, the same numbers, a sane length); the safety guard still judges
   it afterwards. A backend that does not phrase the language well is not asked.
2. `read_answer`: read a patient's free text into a structured answer (yes/no/unsure, a choice id
   or a number) with JSON-schema constrained output, validated with pydantic.
3. `sbar`: a short SBAR note (Situation, Background, Assessment, Recommendation) for the doctor
   team. The model writes the four parts as constrained JSON; the engine's triage level is attached
   by code. The model is never asked for a level.

Every job returns None when the caller should use its template instead. Prompts are pinned to a
version (`PROMPT_VERSIONS`) so that a new prompt file is a reviewed change.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from model.backend import Backend, ChatMessage, GenerationOptions, JsonSchema
from model.prompts import PromptLibrary

Lang = Literal["en", "zh"]
AnswerKind = Literal["yes_no", "choice", "number"]
UNSURE = "unsure"
PROMPT_VERSIONS: dict[str, int] = {"phrase_question": 1, "phrase_advice": 1, "read_answer": 1, "sbar": 1}


@lru_cache(maxsize=1)
def default_prompts() -> PromptLibrary:
    return PromptLibrary()


# ---- inputs and outputs ----------------------------------------------------------------


class PhrasePlan(BaseModel):
    """What the engine is about to say: the template text, whether it asks or advises, the language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["question", "advice"]
    lang: Lang
    text: str = Field(min_length=1, max_length=4000)


class AnswerChoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    label: str


class ReadRequest(BaseModel):
    """One question the lexicon could not decide from the patient's free text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str = Field(min_length=1)
    kind: AnswerKind
    lang: Lang
    patient_text: str = Field(min_length=1, max_length=2000)
    choices: tuple[AnswerChoice, ...] = ()
    unit: str | None = None  # for numbers, as the patient would say it ("days", "°C", "天")
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> ReadRequest:
        ids = [choice.id for choice in self.choices]
        if self.kind == "choice" and len(ids) < 2:
            raise ValueError("a choice question needs at least two choices")
        if self.kind != "choice" and ids:
            raise ValueError("only choice questions have choices")
        if len(set(ids)) != len(ids) or UNSURE in ids:
            raise ValueError(f"choice ids must be unique and not {UNSURE!r}")
        return self


class ReadAnswer(BaseModel):
    """A validated reading: "yes"/"no", a choice id, a number, or "unsure"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AnswerKind
    value: str | float

    @property
    def unsure(self) -> bool:
        return self.value == UNSURE


class QuestionAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    answer: str


class CaseSummary(BaseModel):
    """The facts of a case for the doctor team's note (never the private, crisis turns)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lang: Lang  # the language of the note
    level: str = Field(min_length=1)  # the engine's disposition as the team reads it; attached verbatim
    rule: str = ""
    reason: str = ""
    who: str | None = None
    age: str | None = None
    sex: str | None = None
    complaint: str = ""
    findings: tuple[str, ...] = ()
    answers: tuple[QuestionAnswer, ...] = ()
    red_flags: tuple[str, ...] = ()


# ---- 1. phrasing -----------------------------------------------------------------------


async def phrase(
    backend: Backend,
    plan: PhrasePlan,
    *,
    prompts: PromptLibrary | None = None,
    options: GenerationOptions | None = None,
) -> str | None:
    """The plan's text said warmly, or None (language not phrased well, or the output failed a check)."""
    if plan.lang not in backend.languages:
        return None
    task = f"phrase_{plan.kind}"
    prompt = (prompts or default_prompts()).get(task, plan.lang, PROMPT_VERSIONS[task])
    budget = len(plan.text) // 2 + 48 if plan.lang == "en" else len(plan.text) * 3 // 2 + 48
    messages = prompt.render(text=plan.text.strip())
    raw = await backend.complete(
        messages, options or GenerationOptions(max_tokens=min(1024, budget), temperature=0.3)
    )
    text = accept_phrasing(plan, raw)
    if text is not None and echoes_prompt(messages, plan.text.strip(), text):
        return None  # it recited its instructions: never shown to a patient
    return text


_QUESTION_MARK = re.compile(r"[?？]")
_ENDS_COMPLETE = re.compile(r"[.?!。？！…)）\"'”’」』*]\s*$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def accept_phrasing(plan: PhrasePlan, raw: str) -> str | None:
    """The cleaned model text when it may replace the template, else None."""
    text = clean_output(raw)
    if not text or not _ENDS_COMPLETE.search(text):
        return None  # empty, or cut off by the token budget
    if plan.kind == "question" and not _QUESTION_MARK.search(text):
        return None  # it answered or advised instead of asking
    if set(_NUMBER.findall(text)) != set(_NUMBER.findall(plan.text)):
        return None  # a number appeared, vanished or changed
    if len(text) > 2 * len(plan.text) + 80:
        return None
    if _overlap(plan.text, text) < 0.5:
        return None  # it says something else (e.g. it echoed a prompt example)
    if plan.kind == "advice" and len(text) < 0.4 * len(plan.text):
        return None  # too short to have kept every instruction
    return text


_WORD = re.compile(r"[a-z]{4,}|[\u3400-\u9fff]")
_RUN_WORDS = re.compile(r"[a-z']+")
_RUN_HAN = re.compile(r"[\u3400-\u9fff]+")


def _runs(text: str) -> set[str]:
    """Every five consecutive words, and every six consecutive Chinese characters."""
    lowered = text.lower()
    words = _RUN_WORDS.findall(lowered)
    found = {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}
    for han in _RUN_HAN.findall(lowered):
        found.update(han[i : i + 6] for i in range(len(han) - 5))
    return found


def echoes_prompt(messages: list[ChatMessage], template: str, text: str) -> bool:
    """Whether `text` repeats a stretch of the prompt's instructions (its system message) that
    the template itself does not contain: a model reciting what it was told. (An example's
    answer given for another question fails the overlap check instead.)"""
    told: set[str] = set()
    for message in messages:
        if message.role == "system":
            told |= _runs(message.content.replace(template, " "))
    return bool((told - _runs(template)) & _runs(text))


def _overlap(template: str, text: str) -> float:
    """The share of the template's content words (Chinese: characters) found in the text."""
    wanted = set(_WORD.findall(template.lower()))
    if not wanted:
        return 1.0
    return len(wanted & set(_WORD.findall(text.lower()))) / len(wanted)


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_LABEL = re.compile(
    r"^(?:here(?: is|'s)[^:\n]{0,40}|(?:rephrased|rewritten|reworded|revised)[^:\n]{0,20}|question|advice"
    r"|改写后?的?(?:问题|建议)?|问题|建议)\s*[:：]\s*",
    re.IGNORECASE,
)
_QUOTES = (('"', '"'), ("“", "”"), ("「", "」"), ("'", "'"))


def clean_output(raw: str) -> str:
    """Model text without reasoning blocks, a leading label or wrapping quotes."""
    text = _THINK.sub("", raw).strip()
    text = _LABEL.sub("", text, count=1).strip()
    for left, right in _QUOTES:
        if len(text) >= 2 and text.startswith(left) and text.endswith(right):
            text = text[len(left) : -len(right)].strip()
    return text


# ---- 2. reading free text --------------------------------------------------------------


class _AnswerReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: StrictStr | StrictInt | StrictFloat


def answer_schema(request: ReadRequest) -> JsonSchema:
    """The JSON schema the reply is constrained to."""
    answer: dict[str, Any]
    if request.kind == "yes_no":
        answer = {"type": "string", "enum": ["yes", "no", UNSURE]}
    elif request.kind == "choice":
        answer = {"type": "string", "enum": [*(c.id for c in request.choices), UNSURE]}
    else:
        answer = {"anyOf": [{"type": "number"}, {"type": "string", "enum": [UNSURE]}]}
    return {
        "type": "object",
        "properties": {"answer": answer},
        "required": ["answer"],
        "additionalProperties": False,
    }


async def read_answer(
    backend: Backend, request: ReadRequest, *, prompts: PromptLibrary | None = None
) -> ReadAnswer | None:
    """The patient's text read as an answer to the question, or None when the output does not validate."""
    if request.lang not in backend.languages:
        return None
    prompt = (prompts or default_prompts()).get("read_answer", request.lang, PROMPT_VERSIONS["read_answer"])
    if request.kind == "yes_no":
        allowed = '"yes" | "no" | "unsure"'
    elif request.kind == "choice":
        allowed = " | ".join(json.dumps(value) for value in (*(c.id for c in request.choices), UNSURE))
    else:
        allowed = '<number> | "unsure"'
    options = "; ".join(f"{c.id} = {c.label}" for c in request.choices) or "-"
    messages = prompt.render(
        question=request.question,
        allowed=allowed,
        options=options,
        unit=request.unit or "-",
        patient_text=request.patient_text,
    )
    raw = await backend.complete(
        messages, GenerationOptions(max_tokens=48, temperature=0.0), json_schema=answer_schema(request)
    )
    return parse_answer(request, raw)


def parse_answer(request: ReadRequest, raw: str) -> ReadAnswer | None:
    payload = json_object(raw)
    if payload is None:
        return None
    try:
        value = _AnswerReply.model_validate(payload).answer
    except ValidationError:
        return None
    if value == UNSURE:
        return ReadAnswer(kind=request.kind, value=UNSURE)
    if request.kind == "yes_no":
        return ReadAnswer(kind="yes_no", value=value) if value in ("yes", "no") else None
    if request.kind == "choice":
        ids = {choice.id for choice in request.choices}
        return ReadAnswer(kind="choice", value=value) if value in ids else None
    if isinstance(value, str) or not math.isfinite(value):
        return None
    if (request.minimum is not None and value < request.minimum) or (
        request.maximum is not None and value > request.maximum
    ):
        return None
    return ReadAnswer(kind="number", value=float(value))


def json_object(raw: str) -> dict[str, Any] | None:
    """The JSON object in a reply (tolerating reasoning blocks or text around it), or None."""
    text = _THINK.sub("", raw)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        parsed = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# ---- 3. the doctor team's SBAR note ----------------------------------------------------

SBAR_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        part: {"type": "string", "minLength": 1, "maxLength": 240}
        for part in ("situation", "background", "assessment", "recommendation")
    },
    "required": ["situation", "background", "assessment", "recommendation"],
    "additionalProperties": False,
}


class SbarNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    situation: str = Field(min_length=1, max_length=600)
    background: str = Field(min_length=1, max_length=600)
    assessment: str = Field(min_length=1, max_length=600)
    recommendation: str = Field(min_length=1, max_length=600)


_SBAR_TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "situation": "S (Situation)",
        "background": "B (Background)",
        "assessment": "A (Assessment)",
        "recommendation": "R (Recommendation)",
        "level": "Triage level (rules engine{rule}): {level}",
        "who": "Patient",
        "age": "age",
        "sex": "sex",
        "complaint": "Complaint in the patient's words",
        "findings": "Symptoms present",
        "answers": "Answers to follow-up questions",
        "red_flags": "Red flags",
        "disposition": "Rules engine disposition",
        "because": "because",
        "rule": ", rule ",
        "sep": ": ",
        "list": ", ",
    },
    "zh": {
        "situation": "S（现状）",
        "background": "B（背景）",
        "assessment": "A（评估）",
        "recommendation": "R（建议）",
        "level": "分诊级别（规则引擎{rule}）：{level}",
        "who": "患者",
        "age": "年龄",
        "sex": "性别",
        "complaint": "患者自述的主诉",
        "findings": "已有症状",
        "answers": "追问的回答",
        "red_flags": "危险信号",
        "disposition": "规则引擎的处置",
        "because": "理由",
        "rule": "，规则 ",
        "sep": "：",
        "list": "、",
    },
}


def case_facts(case: CaseSummary) -> str:
    """The case as short lines of facts, the only thing the model sees of it."""
    words = _SBAR_TEXT[case.lang]
    sep, comma = words["sep"], words["list"]
    person = [case.who or "-"]
    if case.age:
        person.append(f"{words['age']} {case.age}")
    if case.sex:
        person.append(f"{words['sex']} {case.sex}")
    lines = [f"- {words['who']}{sep}{comma.join(person)}"]
    if case.complaint:
        lines.append(f"- {words['complaint']}{sep}{case.complaint}")
    if case.findings:
        lines.append(f"- {words['findings']}{sep}{comma.join(case.findings)}")
    if case.answers:
        lines.append(f"- {words['answers']}{sep}")
        lines.extend(f"  - {qa.question} {qa.answer}" for qa in case.answers)
    if case.red_flags:
        lines.append(f"- {words['red_flags']}{sep}{comma.join(case.red_flags)}")
    disposition = case.level + (f" ({case.rule})" if case.rule else "")
    if case.reason:
        disposition += f"; {words['because']}{sep}{case.reason}"
    lines.append(f"- {words['disposition']}{sep}{disposition}")
    return "\n".join(lines)


async def sbar(backend: Backend, case: CaseSummary, *, prompts: PromptLibrary | None = None) -> str | None:
    """A short SBAR note in the case's language, the engine's level attached; None if unusable."""
    if case.lang not in backend.languages:
        return None
    prompt = (prompts or default_prompts()).get("sbar", case.lang, PROMPT_VERSIONS["sbar"])
    raw = await backend.complete(
        prompt.render(facts=case_facts(case)),
        GenerationOptions(max_tokens=400, temperature=0.2),
        json_schema=SBAR_SCHEMA,
    )
    payload = json_object(raw)
    if payload is None:
        return None
    try:
        note = SbarNote.model_validate(payload)
    except ValidationError:
        return None
    return render_sbar(note, case)


def render_sbar(note: SbarNote, case: CaseSummary) -> str:
    words = _SBAR_TEXT[case.lang]
    sep = words["sep"]
    lines = [
        f"{words[part]}{sep}{' '.join(getattr(note, part).split())}"
        for part in ("situation", "background", "assessment", "recommendation")
    ]
    rule = f"{words['rule']}{case.rule}" if case.rule else ""
    lines.append(words["level"].format(rule=rule, level=case.level))
    return "\n".join(lines)
