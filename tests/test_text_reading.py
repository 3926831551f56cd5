"""Reading patients' words: concepts, negation, history, numbers, who the patient is."""

from __future__ import annotations

import pytest

from safety.findings import Status, extract_findings
from safety.lexicon import Lexicon
from safety.quantities import read_age, read_duration_hours, read_temperature, read_who
from safety.text import detect_language, normalise

LEXICON = Lexicon(
    {
        "fever": ["fever", "feverish", "temperature", "发烧", "发热", "烧"],
        "chest_pain": ["chest pain", "pain ... chest", "胸痛", "胸口痛"],
        "stroke": ["stroke", "中风"],
        "vomiting": ["vomit*", "吐"],
        "breathless": ["can't breathe", "喘不上气"],
    }
)


def statuses(text: str) -> dict[str, Status]:
    normalised = normalise(text)
    return {f.concept: f.status for f in extract_findings(normalised, LEXICON)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have a fever", {"fever": Status.PRESENT}),
        ("no fever", {"fever": Status.NEGATED}),
        ("没有发烧", {"fever": Status.NEGATED}),
        ("不烧了", {"fever": Status.NEGATED}),
        ("發燒三天了", {"fever": Status.PRESENT}),
        ("no fever, but chest pain", {"fever": Status.NEGATED, "chest_pain": Status.PRESENT}),
        ("pain in my chest", {"chest_pain": Status.PRESENT}),
        ("he was vomiting all night", {"vomiting": Status.PRESENT}),
        ("my father had a stroke ten years ago", {"stroke": Status.HISTORICAL}),
        ("my father had a stroke years ago and now another stroke", {"stroke": Status.PRESENT}),
        ("我爸以前中风过", {"stroke": Status.HISTORICAL}),
        ("我爸又中风了", {"stroke": Status.PRESENT}),
        ("I can't breathe", {"breathless": Status.PRESENT}),
        ("喘不上气", {"breathless": Status.PRESENT}),
        ("the fever is gone", {"fever": Status.NEGATED}),
        ("not sure if it's a fever", {"fever": Status.PRESENT}),
        ("我不知道是不是发烧", {"fever": Status.PRESENT}),
    ],
)
def test_findings(text: str, expected: dict[str, Status]) -> None:
    assert statuses(text) == expected


def test_english_terms_match_whole_words_only() -> None:
    assert statuses("the temperatures outside") == {}
    assert statuses("feverish") == {"fever": Status.PRESENT}


@pytest.mark.parametrize(
    ("text", "celsius"),
    [
        ("fever of 39.5", 39.5),
        ("101F", 38.3),
        ("体温38.5度", 38.5),
        ("烧到三十九度五", 39.5),
        ("temp 102", 38.9),
        ("he has 38.3", 38.3),
        ("i'm 38 years old", None),
        ("39度", 39.0),
    ],
)
def test_temperature(text: str, celsius: float | None) -> None:
    assert read_temperature(normalise(text)) == celsius


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("for 3 days", 72.0),
        ("三天了", 72.0),
        ("since yesterday", 24.0),
        ("两个小时", 2.0),
        ("a week", 168.0),
        ("my 3 month old", None),
        ("一个多星期", 168.0),
    ],
)
def test_duration(text: str, hours: float | None) -> None:
    assert read_duration_hours(normalise(text)) == hours


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("my 2 year old", 2.0),
        ("my 2yo", 2.0),
        ("5 months old", 0.417),
        ("孩子两岁半", 2.5),
        ("宝宝3个月大", 0.25),
        ("6 week old baby", 0.115),
        ("我爸爸75岁", 75.0),
        ("I am 34", 34.0),
    ],
)
def test_age(text: str, years: float) -> None:
    assert read_age(normalise(text)) == years


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("my son has a fever", "child"),
        ("我女儿发烧", "child"),
        ("my husband collapsed", "other"),
        ("我妈头晕", "other"),
        ("I have a headache", None),
    ],
)
def test_who(text: str, who: str | None) -> None:
    assert read_who(normalise(text)) == who


@pytest.mark.parametrize(
    ("text", "lang"),
    [("I have a fever", "en"), ("我发烧了", "zh"), ("我老公突然 chest pain 出冷汗", "zh"), ("123", None)],
)
def test_language(text: str, lang: str | None) -> None:
    assert detect_language(text) == lang


def test_normalise_folds_traditional_fullwidth_and_case() -> None:
    assert normalise("胸口很痛還冒冷汗ＡＢＣ  Fever") == "胸口很痛还冒冷汗abc fever"
