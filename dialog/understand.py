"""Reading what the patient wrote: which protocols it opens, which questions it already answers,
and how a free-text reply answers the question just asked."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dialog.conditions import Value
from dialog.protocol import Protocol, Quantity, Question, QuestionType
from safety import ScreenResult, normalise
from safety.findings import Status
from safety.quantities import read_age, read_duration_hours, read_temperature
from safety.screen import FEVER

_UNSURE = re.compile(
    r"\b(?:not sure|unsure|don'?t know|dont know|dunno|no idea|maybe|perhaps|idk|not certain"
    r"|can'?t tell|hard to say|no clue)\b"
    r"|不确定|不知道|不清楚|说不好|说不清|可能|也许|不好说|不太清楚|不晓得|不懂"
)
_NO = re.compile(
    r"^(?:no|nope|nah|n|not really|none|never|negative|not at all|no it|no he|no she)\b"
    r"|^(?:没有|没|不是|不会|不|无|否|还没|并没有)"
)
_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|y|ya|sure|correct|right|definitely|ok|okay|i do|i have|he does|she does"
    r"|it is|they do|he is|she is|true|affirmative|a bit|a little|kind of|sort of)\b"
    r"|^(?:是|有|对|嗯|恩|会|好像是|有点|有一点|有些|确实|当然)"
)
_BARE_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])")


def matching_protocols(
    protocols: Iterable[Protocol], present: frozenset[str], age: float | None, sex: str | None
) -> list[Protocol]:
    """Protocols the complaint opens, most dangerous complaint first."""
    found = [
        protocol
        for protocol in protocols
        if not protocol.fallback
        and any(concept in present for concept in protocol.match.concepts)
        and all(concept in present for concept in protocol.match.all_of)
        and protocol.population.admits(age, sex)
    ]
    return sorted(found, key=lambda p: (-p.match.rank, p.id))


def answers_from_text(
    screen: ScreenResult, questions: Iterable[Question], known: Mapping[str, Value]
) -> dict[str, Value]:
    """Answers the patient's own words give, for questions not answered yet."""
    present = screen.present
    negated = {f.concept for f in screen.findings if f.status is Status.NEGATED} - present
    found: dict[str, Value] = {}
    for question in questions:
        if question.id in known or question.id in found:
            continue
        value = _from_findings(question, present, negated, screen)
        if value is not None:
            found[question.id] = value
    return found


def _from_findings(
    question: Question, present: frozenset[str], negated: set[str], screen: ScreenResult
) -> Value | None:
    if question.type is QuestionType.YES_NO and question.concept:
        if question.concept in present:
            return "yes"
        if question.concept in negated:
            return "no"
    elif question.type is QuestionType.CHOICE:
        for choice in question.choices:
            if any(concept in present for concept in choice.concepts):
                return choice.id
    elif question.type is QuestionType.NUMBER:
        if question.quantity is Quantity.TEMPERATURE:
            if screen.quantities.temperature_c is None and FEVER in negated:
                return "no"  # "no fever": no threshold can hold; never compared as a number
            return screen.quantities.temperature_c
        if question.quantity is Quantity.DURATION and screen.quantities.duration_hours is not None:
            return _in_unit(screen.quantities.duration_hours, question.unit)
    return None


def _in_unit(hours: float, unit: str | None) -> float:
    return round(hours / 24, 3) if unit == "days" else hours


def read_reply(text: str, question: Question, screen: ScreenResult) -> Value | None:
    """The answer a free-text reply gives to `question`, or None when it cannot be read."""
    normalised = normalise(text)
    if not normalised:
        return None
    if question.type is QuestionType.TEXT:
        return text.strip()[:500]
    if question.type is QuestionType.NUMBER:
        number = _read_number(normalised, question)
        if number is not None:
            return number
        return "unsure" if _UNSURE.search(normalised) else None
    if question.type is QuestionType.CHOICE:
        return _read_choice(normalised, question, screen)
    return read_yes_no(normalised, question.concept, screen)


def read_yes_no(normalised: str, concept: str | None, screen: ScreenResult) -> Value | None:
    if concept and concept in screen.present:
        return "yes"
    if _UNSURE.search(normalised):
        return "unsure"
    if concept and concept in screen.negated:
        return "no"
    if _NO.search(normalised):
        return "no"
    if _YES.search(normalised):
        return "yes"
    return None


def _read_number(normalised: str, question: Question) -> float | None:
    if question.quantity is Quantity.TEMPERATURE:
        reading = read_temperature(normalised)
        if reading is not None:
            return reading
        bare = _BARE_NUMBER.search(normalised)
        if bare:
            value = float(bare.group(1))
            value = (value - 32) * 5 / 9 if value >= 90 else value
            return round(value, 1) if 34 <= value <= 43.5 else None
        return None
    if question.quantity is Quantity.DURATION:
        hours = read_duration_hours(normalised)
        if hours is not None:
            return _in_unit(hours, question.unit)
    bare = _BARE_NUMBER.search(normalised)
    if bare:
        return float(bare.group(1))
    return None


def _read_choice(normalised: str, question: Question, screen: ScreenResult) -> Value | None:
    index = _BARE_NUMBER.fullmatch(normalised.strip(" .)"))
    if index and 1 <= int(float(index.group(1))) <= len(question.choices):
        return question.choices[int(float(index.group(1))) - 1].id
    for choice in question.choices:
        if any(concept in screen.present for concept in choice.concepts):
            return choice.id
    for choice in question.choices:
        labels = (normalise(choice.text.en), normalise(choice.text.zh), choice.id.replace("_", " "))
        if any(label and (label in normalised or normalised in label) for label in labels):
            return choice.id
    if _UNSURE.search(normalised):
        return "unsure"
    return None


def read_age_reply(text: str) -> float | None:
    """An age from an intake reply: "34", "5 months", "两岁半"; bare numbers are years."""
    normalised = normalise(text)
    age = read_age(normalised)
    if age is None:
        months = re.search(r"(\d+(?:\.\d+)?)\s*(?:months?|mos?|个月|月)", normalised)
        weeks = re.search(r"(\d+(?:\.\d+)?)\s*(?:weeks?|wks?|周|星期)", normalised)
        days = re.search(r"(\d+(?:\.\d+)?)\s*(?:days?|天)", normalised)
        if months:
            age = float(months.group(1)) / 12
        elif weeks:
            age = float(weeks.group(1)) / 52
        elif days:
            age = float(days.group(1)) / 365
        else:
            bare = _BARE_NUMBER.search(normalised)
            age = float(bare.group(1)) if bare else None
    if age is None or not 0 <= age <= 120:
        return None
    return round(age, 3)


# ---- replies outside the protocols: consent, who, sex, "nothing else" -----------------------

_AGREE = re.compile(r"^(?:i agree|agree|yes|ok|okay|sure|同意|我同意|好|好的|可以|是)\W*$")
_NOTHING = re.compile(
    r"^(?:no|nope|nothing|none|that'?s all|that is all|nothing else|no more|not really|n)\b"
    r"|^(?:没有|没了|没有了|就这些|没|无|不用|没别的|就这样)"
)
_WHO = {
    "self": re.compile(r"\b(?:me|myself|i am|i'm|mine|self)\b|^我$|我自己|本人|自己"),
    "child": re.compile(r"\b(?:child|kid|son|daughter|baby|toddler)\b|孩子|儿子|女儿|宝宝|小孩|娃"),
    "other": re.compile(
        r"\b(?:someone|somebody|other|husband|wife|mother|father|mum|mom|dad|friend)\b"
        r"|别人|其他|老公|老婆|爸|妈|朋友|家人"
    ),
}
_SEX = {
    "M": re.compile(r"^(?:m|male|man|boy|he)\b|^男|男性|男孩"),
    "F": re.compile(r"^(?:f|female|woman|girl|she)\b|^女|女性|女孩"),
}
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[A-Za-z]{2,}")


def agrees(text: str) -> bool:
    """A typed "yes" to the consent question."""
    return _AGREE.match(normalise(text)) is not None


def says_nothing_more(normalised: str) -> bool:
    """ "No, that's all" to the open question."""
    return _NOTHING.match(normalised) is not None


def read_who_reply(normalised: str) -> str | None:
    return next((who for who, pattern in _WHO.items() if pattern.search(normalised)), None)


def read_sex_reply(normalised: str) -> str | None:
    return next((sex for sex, pattern in _SEX.items() if pattern.search(normalised)), None)


def decisive(text: str) -> bool:
    """Long enough to tell the language: two Chinese characters or three English words."""
    return len(_CJK.findall(text)) >= 2 or len(_WORD.findall(text)) >= 3


def substantive(text: str) -> bool:
    """More than a greeting: four Chinese characters or three words."""
    return len(_CJK.findall(text)) >= 4 or len(_WORD.findall(text)) >= 3
