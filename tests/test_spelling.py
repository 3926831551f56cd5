"""Reading misspelt words (safety/spelling.py) on the live lexicon: English slips an edit or two
away from a lexicon word, and Chinese homophones typed with a pinyin keyboard.

The last tests gate the `misspelt` persona (bot/personas.py) the way tests/test_case_library.py
gates the cases as written: a lexicon or spelling edit that loses misspelt red flags fails here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.personas import PERSONAS
from bot.report import summarise
from bot.simulator import read_cases, simulate_case
from dialog.ruleset import RuleSet
from dialog.service import ConsultationService
from safety import REGIONS, Outcome, Screener, Status
from safety.findings import extract_findings
from safety.lexicon import Lexicon
from safety.spelling import NEGATIONS, Correction, Speller, allowed_edits
from safety.text import normalise
from storage.memory import MemoryStore

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"


def statuses(rules: RuleSet, text: str) -> dict[str, Status]:
    """Each concept's status; where it is found more than once, present wins."""
    found: dict[str, Status] = {}
    for finding in extract_findings(normalise(text), rules.lexicon):
        if found.get(finding.concept) is not Status.PRESENT:
            found[finding.concept] = finding.status
    return found


def corrections(rules: RuleSet, text: str) -> dict[str, str]:
    normalised = normalise(text)
    rules.lexicon.find(normalised)
    return {c.written: c.read_as for c in rules.lexicon.corrections(normalised)}


def speller(rules: RuleSet) -> Speller:
    lexicon_speller = rules.lexicon._speller
    assert lexicon_speller is not None
    return lexicon_speller


# ---- English ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read", "concepts", "flag"),
    [
        (
            "crushing chset pain for 20 mins and im sweatin",
            {"chset": "chest"},
            {"chest_pain", "sweating"},
            "crushing_chest_pain",
        ),
        ("worst hedache of my life", {"hedache": "headache"}, {"thunderclap"}, "thunderclap_headache"),
        (
            "my son ate a peanut and now his lips are swellin up and he's whezy",
            {"swellin": "swelling", "whezy": "wheezy"},
            {"lip_tongue_swelling", "wheeze"},
            "anaphylaxis_lip_tongue_swelling",
        ),
        (
            "fevr and a stif neck",
            {"fevr": "fever", "stif": "stiff"},
            {"fever", "stiff_neck"},
            "meningitis_stiff_neck",
        ),
    ],
)
def test_english_misspellings_are_read_and_flagged(
    rules: RuleSet, text: str, read: dict[str, str], concepts: set[str], flag: str
) -> None:
    assert corrections(rules, text) == read
    found = statuses(rules, text)
    assert all(found.get(concept) is Status.PRESENT for concept in concepts), found
    result = Screener(rules.lexicon, rules.red_flags).screen(text)
    assert result.outcome is Outcome.EMERGENCY
    assert flag in {f.id for f in result.flags}
    assert {(c.written, c.read_as) for c in result.corrections} == set(read.items())


@pytest.mark.parametrize(
    ("written", "read_as"),
    [
        ("chset", "chest"),  # two letters swapped
        ("chets", "chest"),
        ("tumy", "tummy"),  # a letter dropped
        ("throt", "throat"),  # not "throw": a dropped letter beats a changed one
        ("suden", "sudden"),  # not "sudan"
        ("ancle", "ankle"),  # not "angle": it sounds the same
        ("vomting", "vomiting"),
        ("snezing", "sneezing"),  # `sneez*` lost a letter; never `siez*` (seizure)
        ("droped", "dropped"),  # a whole word before a stem (`droop*`)
        ("temprature", "temperature"),
        ("pian", "pain"),  # the lexicon lists "pian" for pain; the terms written with "pain" read it too
        ("pane", "pain"),  # a real word, but a known slip (wordlists/slips_en.txt)
    ],
)
def test_english_slips_read_as_lexicon_words(rules: RuleSet, written: str, read_as: str) -> None:
    assert speller(rules).read_word(written) == read_as


@pytest.mark.parametrize(
    "word",
    [
        "chess",  # not chest
        "heat",  # not heart
        "fell",  # not feel
        "bread",  # not breath
        "mins",  # not mains
        "heres",  # not herpes
        "fed",  # under four letters: never
        "hest",  # the first letter stays: never "chest"
        "swealing",  # sweating or swelling: too close to call, left alone
        "faeling",  # feeling or falling
        "ectopic",  # a lexicon word is never read as its own plural ("ectopics")
        "xylophonic",
    ],
)
def test_real_words_and_doubtful_slips_are_left_alone(rules: RuleSet, word: str) -> None:
    assert speller(rules).read_word(word) is None


@pytest.mark.parametrize(
    "text",
    ["I lost at chess last night", "the heat in here is awful", "I fell over", "I had some bread for lunch"],
)
def test_sentences_with_real_words_read_no_slips(rules: RuleSet, text: str) -> None:
    assert corrections(rules, text) == {}
    assert not {"chest_pain", "palpitations", "breathlessness"} & set(statuses(rules, text))


def test_negation_words_are_never_read_as_anything(rules: RuleSet) -> None:
    for word in NEGATIONS:
        assert speller(rules).read_word(word) is None, word


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("no chset pain", "chest_pain"),
        ("I don't have a fevr", "fever"),
        ("he is not whezy at all", "wheeze"),
        ("没有肚紫疼", "abdominal_pain"),
        ("不头云", "dizziness"),
    ],
)
def test_a_denied_misspelling_stays_denied(rules: RuleSet, text: str, concept: str) -> None:
    assert corrections(rules, text)
    assert statuses(rules, text)[concept] is Status.NEGATED


def test_numbers_are_read_from_the_text_as_written(rules: RuleSet) -> None:
    result = Screener(rules.lexicon, rules.red_flags).screen("temp 38.5 and fevr for 3 days")
    assert result.quantities.temperature_c == 38.5
    assert result.quantities.duration_hours == 72.0
    assert [(c.written, c.read_as) for c in result.corrections] == [("fevr", "fever")]
    assert "fever" in result.present


def test_words_spelt_right_read_no_slips(rules: RuleSet) -> None:
    for text in ("crushing chest pain and sweating", "胸口痛，出冷汗", "my baby has a fever of 39"):
        assert corrections(rules, text) == {}
        assert not any(m.corrected for m in rules.lexicon.find(normalise(text)))


def test_matches_from_a_reading_are_marked_and_placed_on_the_original_text() -> None:
    lexicon = Lexicon({"chest_pain": ["chest pain"], "fever": ["fever"], "vomiting": ["vomit*"]})
    text = normalise("bad chset pian, fevr and vomting")
    found = {(m.concept, text[m.start : m.end], m.corrected) for m in lexicon.find(text)}
    assert found == {
        ("chest_pain", "chset pian", True),
        ("fever", "fevr", True),
        ("vomiting", "vomting", True),
    }
    assert lexicon.corrections(text) == (
        Correction(4, 9, "chset", "chest"),
        Correction(10, 14, "pian", "pain"),
        Correction(16, 20, "fevr", "fever"),
        Correction(25, 32, "vomting", "vomiting"),
    )


def test_spelling_can_be_turned_off() -> None:
    lexicon = Lexicon({"chest_pain": ["chest pain"]}, spelling=False)
    assert lexicon.find("chset pain") == []
    assert lexicon.corrections("chset pain") == ()


def test_edits_allowed_grow_with_the_word() -> None:
    assert [allowed_edits("x" * n) for n in (3, 4, 7, 8, 12)] == [0, 1, 1, 2, 2]


# ---- Chinese ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read", "concept"),
    [
        ("肚紫剧痛", {"肚紫": "肚子", "肚紫剧痛": "肚子剧痛"}, "abdominal_pain_severe"),
        (
            "桑子疼的利害",
            {"桑子": "嗓子", "桑子疼": "嗓子疼", "疼的": "疼得", "疼的利害": "疼得厉害"},
            "sore_throat",
        ),
        ("我爸突然头云", {"头云": "头晕"}, "dizziness"),
        ("有点头云，昨晚没睡好", {"头云": "头晕"}, "dizziness"),  # 点头 (nod) notwithstanding
        ("宝宝拉肚紫一天了", {"拉肚紫": "拉肚子", "肚紫": "肚子"}, "diarrhoea"),
        ("我老公第一次抽畜", {"抽畜": "抽搐"}, "seizure"),
        ("喉龙痛了10天了", {"喉龙": "喉咙", "喉龙痛": "喉咙痛"}, "sore_throat"),
    ],
)
def test_chinese_homophones_are_read(rules: RuleSet, text: str, read: dict[str, str], concept: str) -> None:
    assert corrections(rules, text) == read
    assert statuses(rules, text)[concept] is Status.PRESENT


@pytest.mark.parametrize(
    ("text", "not_read_as"),
    [
        ("我很心急", "palpitations"),  # 心急 (anxious) reads as 心悸 (palpitations)
        ("他在会上发言", "sore_throat"),  # 发言 (speak) reads as 发炎 (inflamed)
        ("胎动挺好的", "reduced_fetal_movement"),  # 挺好 (fine), not 胎动停 (movements stopped)
        ("吃饭喝水都正常", "chickenpox"),  # 喝水 | 都, not 水痘
        ("每周都要痛两三次", "back_pain"),  # 都要, not 腰痛: a common character is meant as written
        ("工地上被钢筋砸到", "upper_back_pain"),  # 地上 | 被, not 上背
        ("肚子不硬", "hard_to_wake"),  # a reading never makes a denial (不应)
        ("一直用哮喘的激素", "breathlessness"),  # 哮喘 | 的, not 喘得
        ("以前得过肺栓塞，已经停药了", "animal_bite"),  # 药了 is no 咬了
        ("我快被老板逼疯了", "insect_sting"),  # 逼疯 is no 被蜂: a slip changes a character, not the word
        ("躺到凌晨两点还睡不着", "burn"),  # 躺到 keeps only the complement 到 of 烫到
    ],
)
def test_common_chinese_words_are_not_misread(rules: RuleSet, text: str, not_read_as: str) -> None:
    assert corrections(rules, text) == {}
    assert not_read_as not in statuses(rules, text)


# ---- the misspelt persona -----------------------------------------------------------------------


def _run_misspelt(rules: RuleSet, path: Path) -> list[dict[str, Any]]:
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    persona = PERSONAS["misspelt"]

    async def run_all() -> list[dict[str, Any]]:
        return [await simulate_case(service, case, persona=persona) for case in read_cases(path)]

    return asyncio.run(run_all())


def _misses(results: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['id']}: {r['transcript'][0]['text']}" for r in results if not r["red_flag"])


def test_misspelt_red_flags_are_still_recalled(rules: RuleSet) -> None:
    """Measured 100.0% (391 cases, 168 of them rewritten); 85.7% before misspellings were read."""
    results = _run_misspelt(rules, CASES_DIR / "safety" / "redflags.jsonl")
    assert summarise(results).red_flag_recall >= 99.0, _misses(results)


def test_misspelt_benign_messages_rarely_alarm(rules: RuleSet) -> None:
    """Measured 0.2% (1 of 402), the same as the messages as written."""
    results = _run_misspelt(rules, CASES_DIR / "safety" / "benign.jsonl")
    alarms = [r for r in results if r["red_flag"]]
    assert len(alarms) <= 0.01 * len(results), "\n".join(r["transcript"][0]["text"] for r in alarms)


def test_misspelt_library_meets_the_goals(rules: RuleSet) -> None:
    """Measured 99.8% accuracy, 0.0% under-triage, 100% red-flag recall; before: 90.5%, 4.7%, 75.7%."""
    results = [
        r for path in sorted((CASES_DIR / "library").glob("*.jsonl")) for r in _run_misspelt(rules, path)
    ]
    summary = summarise(results)
    assert summary.overall.accuracy >= 95.0, summary.overall
    assert summary.overall.under_rate <= 2.0, summary.overall
    assert summary.red_flag_recall == 100.0, _misses([r for r in results if r["expected"].get("red_flag")])
