"""Reading patients' words: concepts, negation, history, numbers, who the patient is."""

from __future__ import annotations

import pytest

from safety.findings import LATE_PERIOD, Status, extract_findings
from safety.lexicon import Lexicon
from safety.quantities import (
    read_age,
    read_days_since_last_period,
    read_duration_hours,
    read_sex,
    read_temperature,
    read_who,
)
from safety.text import detect_language, normalise

LEXICON = Lexicon(
    {
        "fever": ["fever", "feverish", "temperature", "发烧", "发热", "烧"],
        "chest_pain": ["chest pain", "pain ... chest", "胸痛", "胸口痛"],
        "stroke": ["stroke", "中风"],
        "vomiting": ["vomit*", "吐"],
        "breathless": ["can't breathe", "喘不上气", "喘气", "~breathing is normal", "~喘气没问题"],
        "cant_move": ["不能动", "~能动"],
        "rash_not_fading": ["rash that doesn't fade", "~no rash"],
        "self_harm": ["harming myself", "killing myself"],
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
        ("he had a stroke in the past", {"stroke": Status.HISTORICAL}),
        ("he had a stroke in the past week", {"stroke": Status.PRESENT}),
        ("vomiting twice in the past few days", {"vomiting": Status.PRESENT}),
        ("我爸又中风了", {"stroke": Status.PRESENT}),
        ("I can't breathe", {"breathless": Status.PRESENT}),
        ("喘不上气", {"breathless": Status.PRESENT}),
        ("the fever is gone", {"fever": Status.NEGATED}),
        ("not sure if it's a fever", {"fever": Status.PRESENT}),
        ("我不知道是不是发烧", {"fever": Status.PRESENT}),
        ("孩子特别发烧", {"fever": Status.PRESENT}),
        ("别的都好，就是发烧", {"fever": Status.PRESENT}),
        # a denied list reaches across "or" further than a plain negation does
        (
            "no vomiting at all last night or chest pain",
            {"vomiting": Status.NEGATED, "chest_pain": Status.NEGATED},
        ),
        (
            "no vomiting at all last night and chest pain",
            {"vomiting": Status.NEGATED, "chest_pain": Status.PRESENT},
        ),
        ("没有吐过血的情况或者胸痛", {"vomiting": Status.NEGATED, "chest_pain": Status.NEGATED}),
        ("没有吐过血的情况，胸痛", {"vomiting": Status.NEGATED, "chest_pain": Status.PRESENT}),
        ("吃了药没怎么好还是喘不上气", {"breathless": Status.PRESENT}),
        # a test for it came back negative
        ("did a stroke test that came back negative", {"stroke": Status.NEGATED}),
        (
            "stroke test was negative, but now chest pain",
            {"stroke": Status.NEGATED, "chest_pain": Status.PRESENT},
        ),
        ("中风检测是阴性", {"stroke": Status.NEGATED}),
        ("stroke test tomorrow", {"stroke": Status.PRESENT}),
        # a denial term says a concept is absent, where it is itself stated
        ("her breathing is normal", {"breathless": Status.NEGATED}),
        ("喘气没问题，就是发烧", {"breathless": Status.NEGATED, "fever": Status.PRESENT}),
        ("喘气很费劲", {"breathless": Status.PRESENT}),
        ("his breathing is not normal", {}),
        ("his temperature is nowhere near a fever", {"fever": Status.NEGATED}),
        ("胳膊不能动", {"cant_move": Status.PRESENT}),  # a denied denial hides nothing
        ("胳膊能动", {"cant_move": Status.NEGATED}),
        ("no rash, no fever", {"rash_not_fading": Status.NEGATED, "fever": Status.NEGATED}),
        # a negation governing "thoughts of" reaches what the thoughts are about, and only then
        ("im not having any thoughts of harming myself", {"self_harm": Status.NEGATED}),
        ("no thoughts about killing myself", {"self_harm": Status.NEGATED}),
        ("I'm not sleeping and having thoughts of killing myself", {"self_harm": Status.PRESENT}),
        ("not eating, thoughts of harming myself", {"self_harm": Status.PRESENT}),
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
        ("I am breastfeeding my baby and my breast is red and sore", None),
        ("I am breastfeeding and my baby has a rash", "child"),
        ("我在给宝宝喂奶，乳房红肿", None),
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


@pytest.mark.parametrize(
    ("text", "sex"),
    [
        ("I'm breastfeeding my 2 month old son and my breast hurts", "F"),
        ("哺乳期，乳房红肿", "F"),
        ("my son has a fever", "M"),
    ],
)
def test_sex_of_a_nursing_mother(text: str, sex: str | None) -> None:
    assert read_sex(normalise(text)) == sex


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("my last period was about 7 weeks ago", 49.0),
        ("last period 3 weeks ago", 21.0),
        ("LMP 6 weeks ago", 42.0),
        ("I haven't had a period for 2 months", 60.0),
        ("no period in seven weeks", 49.0),
        ("末次月经是7周前", 49.0),
        ("上次来例假两个多月前", 60.0),
        ("七周没来月经了", 49.0),
        ("月经已经两个月没来了", 60.0),
        ("停经50天", 50.0),
        ("I have had a headache for 7 weeks", None),
    ],
)
def test_days_since_last_period(text: str, days: float | None) -> None:
    reading = read_days_since_last_period(normalise(text))
    assert (reading[0] if reading else None) == days


PERIOD_LEXICON = Lexicon(
    {
        LATE_PERIOD: ["period is late", "停经"],
        "pregnant": ["pregnant", "@" + LATE_PERIOD],
        "possibly_pregnant": ["@pregnant"],
        "vomiting": ["vomit*"],
        "sick": ["@vomiting", "!vomit* ... motion"],
    }
)


def period_statuses(text: str) -> dict[str, Status]:
    return {f.concept: f.status for f in extract_findings(normalise(text), PERIOD_LEXICON)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a period later than the longest normal cycle (38 days) is found, with what includes it
        (
            "my last period was 7 weeks ago",
            {LATE_PERIOD: Status.PRESENT, "pregnant": Status.PRESENT, "possibly_pregnant": Status.PRESENT},
        ),
        (
            "last period 2 months ago",
            {LATE_PERIOD: Status.PRESENT, "pregnant": Status.PRESENT, "possibly_pregnant": Status.PRESENT},
        ),
        (
            "末次月经7周前",
            {LATE_PERIOD: Status.PRESENT, "pregnant": Status.PRESENT, "possibly_pregnant": Status.PRESENT},
        ),
        ("last period 4 weeks ago", {}),
        (
            "my period is late",
            {LATE_PERIOD: Status.PRESENT, "pregnant": Status.PRESENT, "possibly_pregnant": Status.PRESENT},
        ),
        (
            "没有停经",
            {LATE_PERIOD: Status.NEGATED, "pregnant": Status.NEGATED, "possibly_pregnant": Status.NEGATED},
        ),
        ("I am pregnant", {"pregnant": Status.PRESENT, "possibly_pregnant": Status.PRESENT}),
        # an exclusion of the including concept holds for what it includes
        ("vomiting", {"vomiting": Status.PRESENT, "sick": Status.PRESENT}),
        ("vomiting from motion sickness", {"vomiting": Status.PRESENT}),
    ],
)
def test_included_concepts_and_late_periods(text: str, expected: dict[str, Status]) -> None:
    assert period_statuses(text) == expected


def test_an_included_concept_must_exist() -> None:
    with pytest.raises(ValueError, match="names no concept"):
        Lexicon({"pregnant": ["@missed_period"]})


def test_no_late_period_without_the_concept() -> None:
    assert statuses("my last period was 7 weeks ago") == {}


@pytest.mark.parametrize(
    ("text", "sex"),
    [
        ("34 m, chest pain", "M"),
        ("f 28 with a headache", "F"),
        ("I'm 20 weeks pregnant and have a headache", None),
        ("i'm 19 and have a sore throat", None),
    ],
)
def test_short_sex_notes_but_not_the_m_of_im(text: str, sex: str | None) -> None:
    assert read_sex(normalise(text)) == sex
