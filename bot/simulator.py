"""The patient simulator (../shared/CASES.md): case files in, result lines out.

Each case is played by a simulated patient against the same ConsultationService that Telegram
uses; the patient only sees the bot's replies (their text, buttons and what they ask for).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialog.events import Escalation, Expect, Inbound, Reply
from dialog.service import ConsultationService
from safety import Level, Screener, TriageClass, detect_language, normalise
from safety.findings import Status
from safety.quantities import read_quantities

Unknown = Literal["unsure", "no"]
MAX_TURNS = 60
_LEVELS = {level.value for level in Level}
_CLASSES = {cls.value for cls in TriageClass}


class Expected(BaseModel):
    model_config = ConfigDict(extra="ignore")

    triage: str | None = None
    red_flag: bool | None = None

    @field_validator("triage")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in _LEVELS | _CLASSES:
            raise ValueError(f"unknown triage {value!r}")
        return value


class SimCase(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    messages: list[str] = Field(min_length=1)
    lang: Literal["en", "zh"] | None = None
    age: float | None = None
    sex: Literal["F", "M"] | None = None
    answers: dict[str, str | float] = Field(default_factory=dict)
    expected: Expected = Field(default_factory=Expected)


class CaseFileError(ValueError):
    pass


class Persona(Protocol):
    """How a simulated patient writes (bot.personas): it rewrites what the patient types, never
    what the patient knows."""

    @property
    def name(self) -> str: ...

    @property
    def rewriter(self) -> str: ...

    def __call__(self, case: SimCase) -> SimCase: ...

    def typed(self, text: str, case: SimCase, slot: Literal["age", "number"]) -> str: ...


def read_cases(path: Path) -> list[SimCase]:
    """Parse a JSON Lines case file; a bad line is an error naming its line number."""
    cases: list[SimCase] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = SimCase.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise CaseFileError(f"{path}:{number}: {exc}") from None
        if case.id in seen:
            raise CaseFileError(f"{path}:{number}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


class SimulatedPatient:
    """Answers the bot as CASES.md prescribes: explicit answers, then the case's own text, then
    the `unknown` policy. With a persona it types in that persona's words, but what it knows (and
    so every answer) still comes from the case as written."""

    def __init__(
        self, case: SimCase, screener: Screener, unknown: Unknown, persona: Persona | None = None
    ) -> None:
        self.case = case
        self.unknown = unknown
        self.persona = persona
        self.said = persona(case) if persona is not None else case
        self.rewritten = self.said.messages != case.messages
        self.unsent = list(self.said.messages)
        self.repeated = False
        joined = normalise(" . ".join(case.messages))
        findings = screener.screen(" . ".join(case.messages)).findings
        self.present = {f.concept for f in findings if f.status is Status.PRESENT}
        self.negated = {f.concept for f in findings if f.status is Status.NEGATED} - self.present
        self.historical = {f.concept for f in findings if f.status is Status.HISTORICAL} - self.present
        self.quantities = read_quantities(joined)

    def next_message(self) -> str | None:
        return self.unsent.pop(0) if self.unsent else None

    def _typed(self, text: str, slot: Literal["age", "number"]) -> tuple[str, str]:
        if self.persona is not None:
            written = self.persona.typed(text, self.case, slot)
            self.rewritten |= written != text
            text = written
        return ("text", text)

    def answer(self, reply: Reply) -> tuple[str, str] | None:
        """("text", words) or ("button", data) for what the reply asks; None when done."""
        expect = reply.expect
        match expect.kind:
            case "consent":
                return ("button", "consent:yes")
            case "who":
                return self._who()
            case "age":
                return self._age()
            case "sex":
                return self._sex()
            case "complaint":
                return self._complaint()
            case "open":
                return self._open()
            case "safety":
                return self._safety(expect)
            case "question":
                return self._question(expect)
        return None

    def _safety(self, expect: Expect) -> tuple[str, str]:
        """Asked whether a denied or past finding is happening now: the case text decides."""
        if expect.concept in self.present:
            return ("button", "safety:yes")
        if expect.concept in self.negated | self.historical or self.unknown == "no":
            return ("button", "safety:no")
        return ("button", "safety:yes")

    def _who(self) -> tuple[str, str]:
        who = self.quantities.who
        if who is None and self.case.age is not None and self.case.age < 16:
            who = "child"
        return ("button", f"who:{who or 'self'}")

    def _age(self) -> tuple[str, str]:
        age = self.case.age if self.case.age is not None else self.quantities.age_years
        if age is None:
            return self._typed("not sure" if self.unknown == "unsure" else "don't know", "age")
        if age < 1:
            return self._typed(f"{round(age * 12, 1)} months", "age")
        return self._typed(f"{age:g}", "age")

    def _sex(self) -> tuple[str, str]:
        sex = self.case.sex or self.quantities.sex
        return ("button", f"sex:{sex or 'unsure'}")

    def _complaint(self) -> tuple[str, str] | None:
        """Asked for the problem again: the next message, else say the first one once more, as a
        patient who was not understood would."""
        message = self.next_message()
        if message is None and not self.repeated:
            self.repeated = True
            message = self.said.messages[0]
        return ("text", message) if message is not None else None

    def _open(self) -> tuple[str, str]:
        message = self.next_message()
        return ("text", message) if message is not None else ("button", "open:none")

    def _question(self, expect: Expect) -> tuple[str, str]:
        qid = expect.question_id or ""
        explicit = self.case.answers.get(qid)
        if explicit is None and expect.concept:
            explicit = self.case.answers.get(expect.concept)
        if explicit is not None:
            return self._give(expect, explicit)
        if expect.concept in self.present:
            return ("button", f"a:{qid}:yes")
        if expect.concept in self.negated:
            return ("button", f"a:{qid}:no")
        if expect.question_type == "number":
            if expect.quantity == "temperature" and self.quantities.temperature_c is not None:
                return self._typed(f"{self.quantities.temperature_c}", "number")
            if expect.quantity == "duration" and self.quantities.duration_hours is not None:
                return self._typed(f"{self.quantities.duration_hours:g} hours", "number")
        return self._give(expect, self.unknown)

    def _give(self, expect: Expect, value: str | float) -> tuple[str, str]:
        qid = expect.question_id or ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            unit = " days" if expect.unit == "days" else (" hours" if expect.unit == "hours" else "")
            return self._typed(f"{value:g}{unit}", "number")
        text = str(value)
        if expect.question_type == "number" and text not in ("unsure", "no"):
            return self._typed(text, "number")
        if expect.question_type == "number":
            return ("button", f"a:{qid}:unsure")
        if expect.question_type == "choice" and text not in expect.choices:
            return ("button", f"a:{qid}:unsure")
        return ("button", f"a:{qid}:{text}")


async def simulate_case(
    service: ConsultationService,
    case: SimCase,
    unknown: Unknown = "unsure",
    prefix: str = "sim",
    persona: Persona | None = None,
) -> dict[str, Any]:
    """Play one case; with a persona, as that persona writes (the result names both)."""
    patient = SimulatedPatient(case, service.screener, unknown, persona)
    patient_id = f"{prefix}:{case.id}"
    transcript: list[dict[str, str]] = []
    questions: list[str] = []
    outcome = None
    red_flag = False
    escalated = False
    turns = 0
    message = patient.next_message()
    assert message is not None
    inbound = Inbound(patient_id=patient_id, kind="text", text=message, lang_hint=case.lang)
    while turns < MAX_TURNS:
        turns += 1
        transcript.append({"from": "patient", "text": inbound.text or inbound.data})
        actions = await service.handle(inbound)
        replies = [a for a in actions if isinstance(a, Reply)]
        escalated |= any(isinstance(a, Escalation) for a in actions)
        for reply in replies:
            transcript.append({"from": "bot", "text": reply.text})
            if reply.expect.kind == "question" and reply.expect.question_id:
                questions.append(reply.expect.question_id)
            if reply.purpose in ("emergency", "crisis"):
                red_flag = True
            if reply.triage is not None and (outcome is None or reply.triage.level >= outcome.level):
                outcome = reply.triage
        if red_flag:
            break
        if any(r.purpose == "advice" for r in replies):
            # the advice invites the patient to say more; one with more to say says it
            message = patient.next_message()
            if message is None:
                break
            inbound = Inbound(patient_id=patient_id, kind="text", text=message)
            continue
        asking = [r for r in replies if r.expect.kind != "none"]
        if not asking:
            break
        answer = patient.answer(asking[-1])
        if answer is None:
            break
        kind, value = answer
        inbound = (
            Inbound(patient_id=patient_id, kind="button", data=value)
            if kind == "button"
            else Inbound(patient_id=patient_id, kind="text", text=value)
        )
    result = _result(
        case,
        outcome.level if outcome else None,
        red_flag,
        outcome.protocol if outcome else None,
        outcome.rule if outcome else None,
        turns,
        questions,
        transcript,
        escalated,
    )
    # which rewriting the patient's words went through: "none" where they are the case's own
    result["persona"] = persona.name if persona is not None else "none"
    result["rewriter"] = persona.rewriter if persona is not None and patient.rewritten else "none"
    return result


def _result(
    case: SimCase,
    level: Level | None,
    red_flag: bool,
    protocol: str | None,
    rule: str | None,
    turns: int,
    questions: list[str],
    transcript: list[dict[str, str]],
    escalated: bool,
) -> dict[str, Any]:
    expected = case.expected.model_dump(exclude_none=True)
    correct: bool | None = None
    if case.expected.triage is not None:
        if level is None:
            correct = False
        elif case.expected.triage in _CLASSES:
            # `emergency` names a level and a class; read as the class, as the safety sets mean it
            correct = level.triage_class.value == case.expected.triage
        else:
            correct = level.value == case.expected.triage
    return {
        "id": case.id,
        "lang": case.lang or detect_language(case.messages[0]) or "en",
        "triage": level.value if level else None,
        "triage3": level.triage_class.value if level else None,
        "red_flag": red_flag,
        "protocol": protocol,
        "turns": turns,
        "questions": questions,
        "rule": rule,
        "escalated": escalated,
        "expected": expected,
        "correct": correct,
        "transcript": transcript,
    }


def iter_jsonl(results: Iterable[dict[str, Any]]) -> Iterator[str]:
    for result in results:
        yield json.dumps(result, ensure_ascii=False)
