"""Personas (bot/personas.py): deterministic rewrites that change how a patient writes, never what
the patient reports; and the simulator and `wenzhen simulate --personas` that play them."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import opencc
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import personas
from bot.cli import cli
from bot.personas import PERSONAS, Persona, Writing
from bot.simulator import SimCase, read_cases, simulate_case
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.understand import read_age_reply
from safety import REGIONS, Screener, Status, normalise
from safety.quantities import read_age, read_duration_hours, read_temperature, read_who
from storage.memory import MemoryStore
from tests.helpers import fixture_rules_dir

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = [case for path in sorted((ROOT / "cases" / "library").glob("*.jsonl")) for case in read_cases(path)]
NAMES = sorted(PERSONAS)
_T2S = opencc.OpenCC("t2s")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_EN_NEGATION = re.compile(
    r"\b(?:no|not|never|nothing|without|none|nor|neither|nobody|denies|denied|cannot|don'?t|doesn'?t"
    r"|didn'?t|isn'?t|wasn'?t|hasn'?t|haven'?t|aren'?t|can'?t|won'?t|couldn'?t|wouldn'?t|shouldn'?t"
    r"|hadn'?t)\b"
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cases = st.sampled_from(LIBRARY)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=16)


def _renamed(case: SimCase, new_id: str) -> SimCase:
    return case.model_copy(update={"id": new_id})


def _numbers(text: str) -> list[str]:
    return _NUMBER.findall(normalise(text))


def _negations(text: str) -> Counter[str]:
    folded = normalise(text)  # Traditional 沒 counts as 没
    found = Counter(m.group(0).replace("'", "") for m in _EN_NEGATION.finditer(folded))
    found.update(char for char in folded if char in personas.ZH_NEGATIONS)
    return found


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    rest = iter(long)
    return all(item in rest for item in short)


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment)."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


@pytest.fixture(scope="module")
def screener(rules: RuleSet) -> Screener:
    return Screener(rules.lexicon, rules.red_flags)


def _statuses(screener: Screener, messages: list[str]) -> tuple[set[str], set[str]]:
    findings = screener.screen(" . ".join(messages)).findings
    present = {f.concept for f in findings if f.status is Status.PRESENT}
    negated = {f.concept for f in findings if f.status is Status.NEGATED} - present
    return present, negated


# ---- the registry ---------------------------------------------------------------------------------


def test_the_registry_names_each_persona_with_what_it_imitates() -> None:
    assert set(PERSONAS) == {"terse", "verbose", "misspelt", "traditional", "mixed", "parent", "elderly"}
    for name, persona in PERSONAS.items():
        assert persona.name == name
        assert persona.rewriter == "rules"
        assert "patients" in persona.description.lower() or "parents" in persona.description.lower()
    assert [p.name for p in personas.select("all")] == list(PERSONAS)
    assert [p.name for p in personas.select("terse, misspelt,terse")] == ["terse", "misspelt"]
    with pytest.raises(ValueError, match="shouty"):
        personas.select("terse,shouty")


# ---- deterministic, seeded by the case id --------------------------------------------------------


@_SETTINGS
@given(case=cases, name=st.sampled_from(NAMES), seed=st.integers())
def test_a_persona_is_a_pure_function_of_the_case(case: SimCase, name: str, seed: int) -> None:
    persona = PERSONAS[name]
    random.seed(seed)
    first = persona(case)
    random.seed(seed + 1)
    assert persona(SimCase.model_validate(case.model_dump())) == first
    assert case.messages == SimCase.model_validate(case.model_dump()).messages  # the input is untouched
    assert first.model_dump(exclude={"messages"}) == case.model_dump(exclude={"messages"})
    for slot in ("age", "number"):
        assert persona.typed("38.5", case, slot) == persona.typed("38.5", case, slot)


@pytest.mark.parametrize("name", ["verbose", "misspelt", "mixed", "elderly", "parent"])
def test_different_case_ids_may_be_written_differently(name: str) -> None:
    persona = PERSONAS[name]
    differing = 0
    for case in LIBRARY:
        if persona(case) is case:
            continue
        written = {tuple(persona(_renamed(case, f"{case.id}-{i}")).messages) for i in range(12)}
        differing += len(written) > 1
    assert differing > 0


# ---- what a rewrite keeps ------------------------------------------------------------------------


@_SETTINGS
@given(case=cases, name=st.sampled_from(NAMES), new_id=ids)
def test_a_rewrite_keeps_every_number_negation_temperature_and_duration(
    case: SimCase, name: str, new_id: str
) -> None:
    case = _renamed(case, new_id)
    rewritten = PERSONAS[name](case)
    assert len(rewritten.messages) == len(case.messages)
    for before, after in zip(case.messages, rewritten.messages, strict=True):
        numbers, new_numbers = _numbers(before), _numbers(after)
        assert _is_subsequence(numbers, new_numbers), (before, after)
        added = Counter(new_numbers) - Counter(numbers)
        assert all(float(n) == case.age for n in added.elements()), (before, after)  # "I'm 78 now"
        assert not _negations(before) - _negations(after), (before, after)
        assert read_temperature(normalise(after)) == read_temperature(normalise(before)), (before, after)
        assert read_duration_hours(normalise(after)) == read_duration_hours(normalise(before)), (
            before,
            after,
        )
        assert read_age(normalise(after)) in (read_age(normalise(before)), case.age), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_no_finding_turns_from_present_to_denied_or_back(name: str, screener: Screener) -> None:
    persona = PERSONAS[name]
    for case in LIBRARY:
        present, negated = _statuses(screener, case.messages)
        new_present, new_negated = _statuses(screener, persona(case).messages)
        assert not negated & new_present, (case.id, persona(case).messages)
        assert not present & new_negated, (case.id, persona(case).messages)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("answer", ["34", "72", "5.0 months", "0.5 months", "not sure"])
def test_a_typed_age_reads_as_the_same_age(name: str, answer: str) -> None:
    for case in LIBRARY[::7]:
        typed = PERSONAS[name].typed(answer, case, "age")
        assert read_age_reply(typed) == read_age_reply(answer), (case.id, typed)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("answer", ["38.6", "39", "3 days", "2 hours", "unsure"])
def test_a_typed_number_keeps_its_number(name: str, answer: str) -> None:
    for case in LIBRARY[::7]:
        typed = PERSONAS[name].typed(answer, case, "number")
        assert _numbers(typed) == _numbers(answer), (case.id, typed)


def test_the_sentences_personas_add_report_nothing(screener: Screener) -> None:
    """Openings, closings, hedges and asides: no finding, no number, no negation of their own."""
    added: list[Mapping[str, Sequence[str]]] = [
        personas.VERBOSE_OPENINGS,
        personas.VERBOSE_LEADS,
        personas.VERBOSE_MORE,
        personas.VERBOSE_CLOSINGS,
        personas.ELDERLY_CONTEXT,
        personas.ELDERLY_PHONE,
        personas.ELDERLY_CLOSINGS,
        personas.ELDERLY_HEDGES,
        personas.PARENT_OPENINGS,
        personas.PARENT_CLOSINGS,
    ]
    fill = {"child": "son", "him": "him", "he": "he", "pronoun": "他", "parent": "妈妈"}
    sentences = [text.format(**fill) for table in added for texts in table.values() for text in texts]
    assert len(sentences) > 40
    for sentence in sentences:
        assert not screener.screen(sentence).findings, sentence
        assert not _NUMBER.search(sentence), sentence
        assert not _negations(sentence), sentence


# ---- each persona --------------------------------------------------------------------------------


def test_terse_drops_only_filler() -> None:
    persona = PERSONAS["terse"]
    shortened = 0
    short_forms = {**personas.TERSE_SHORT, **personas.TERSE_UNITS}
    for case in LIBRARY:
        for before, after in zip(case.messages, persona(case).messages, strict=True):
            old = [w.lower() for w in _WORD.findall(before)]
            new = [w.lower() for w in _WORD.findall(after)]
            kept: list[str] = []  # the old words that `new` keeps, in order, each as written or short
            rest = iter(old)
            for word in new:
                match = next((o for o in rest if word in (o, short_forms.get(o))), None)
                assert match is not None, (word, before, after)
                kept.append(match)
            dropped = Counter(old) - Counter(kept)
            assert not set(dropped) & personas.EN_KEEP, (before, after)
            shortened += len(after) < len(before)
    assert shortened > 30


@_SETTINGS
@given(case=cases, new_id=ids)
def test_misspellings_stay_recognisable(case: SimCase, new_id: str) -> None:
    rewritten = PERSONAS["misspelt"](_renamed(case, new_id))
    for before, after in zip(case.messages, rewritten.messages, strict=True):
        old, new = _WORD.findall(before), _WORD.findall(after)
        assert len(old) == len(new), (before, after)
        for word, written in zip(old, new, strict=True):
            if word == written:
                continue
            assert word.lower() not in personas.EN_KEEP, (word, written)
            assert written[0].lower() == word[0].lower(), (word, written)
            assert len(word) >= 4, (word, written)
            assert len(written) >= len(word) - 2, (word, written)
            assert _edit_distance(word.lower(), written.lower()) <= 2, (word, written)
        negations_zh = [char for char in before if char in personas.ZH_NEGATIONS]
        assert negations_zh == [char for char in after if char in personas.ZH_NEGATIONS]


def test_misspelt_writes_the_misspellings_patients_write() -> None:
    rng = random.Random(0)
    for word, known in personas.MISSPELLINGS_EN.items():
        slips = {personas.misspell_word(word, rng) for _ in range(30)}
        assert slips == set(known), word
    assert personas.misspell_word("breathing", random.Random(1)) in personas.MISSPELLINGS_EN["breathing"]
    generic = {personas.misspell_word("different", random.Random(i)) for i in range(40)}
    assert {"diffrent", "diferent"} <= generic


def test_traditional_characters_map_back_to_the_case() -> None:
    persona = PERSONAS["traditional"]
    rewritten_zh = 0
    for case in LIBRARY:
        rewritten = persona(case)
        if not any(re.search(r"[\u4e00-\u9fff]", m) for m in case.messages):
            assert rewritten is case
            continue
        for before, after in zip(case.messages, rewritten.messages, strict=True):
            assert _T2S.convert(after) == before  # t2s undoes it exactly
            assert len(after) == len(before)
        # and it wrote Traditional characters: text that t2s changes
        rewritten_zh += any(_T2S.convert(after) != after for after in rewritten.messages)
    assert rewritten_zh > 150


_SIMPLIFIED = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=30)


@given(_SIMPLIFIED.filter(lambda text: _T2S.convert(text) == text))
def test_to_traditional_of_simplified_text_always_maps_back(text: str) -> None:
    assert _T2S.convert(personas.to_traditional(text)) == text


def test_mixed_switches_symptom_words_into_the_other_language(screener: Screener) -> None:
    persona = PERSONAS["mixed"]
    for (
        zh,
        en,
    ) in personas.MIXED_TERMS:  # a translation, where the lexicon knows the words, names a concept of both
        concepts_zh = {f.concept for f in screener.screen(zh).findings}
        concepts_en = {f.concept for f in screener.screen(en).findings}
        assert concepts_zh & concepts_en or not (concepts_zh and concepts_en), (zh, en)
    switched = 0
    for case in LIBRARY:
        rewritten = persona(case)
        if rewritten is case:
            continue
        switched += 1
        scripts = [
            bool(re.search(r"[\u4e00-\u9fff]", m)) and bool(re.search(r"[A-Za-z]{3}", m))
            for m in rewritten.messages
        ]
        assert any(scripts), rewritten.messages  # both languages in one message
    assert switched > 150


def test_parent_writes_about_a_child_and_leaves_adults_alone() -> None:
    persona = PERSONAS["parent"]
    for case in LIBRARY:
        rewritten = persona(case)
        if case.age is None or case.age >= 16:
            assert rewritten is case
            assert persona.typed("34", case, "age") == "34"
            continue
        assert rewritten.messages != case.messages
        assert read_who(normalise(" . ".join(rewritten.messages))) == "child", rewritten.messages
        for before, after in zip(case.messages, rewritten.messages, strict=True):
            assert before in after  # the case's own words, whole (quoted when the child wrote them)


def test_elderly_is_for_adults_and_states_an_older_patients_age() -> None:
    persona = PERSONAS["elderly"]
    stated = 0
    for case in LIBRARY:
        rewritten = persona(case)
        if case.age is not None and case.age < 16:
            assert rewritten is case
            continue
        assert len(" ".join(rewritten.messages)) > len(" ".join(case.messages))
        if case.age is not None and case.age >= 60 and read_who(normalise(" ".join(case.messages))) is None:
            stated += read_age(normalise(rewritten.messages[0])) == case.age
    assert stated > 20


# ---- the simulator and the command line -------------------------------------------------------------


def _shout(text: str, w: Writing) -> str:
    return text.upper()


def _as_written(text: str, w: Writing) -> str:
    return text


def _years(text: str, w: Writing) -> str:
    return f"{text} years" if w.slot == "age" and _NUMBER.fullmatch(text) else text


async def test_the_simulated_patient_types_as_the_persona_but_knows_the_case(tmp_path: Path) -> None:
    rules = load_rules(fixture_rules_dir(tmp_path))
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    case = SimCase(
        id="p-1",
        lang="en",
        age=30,
        sex="F",
        messages=["fever since yesterday, no stiff neck"],
        answers={"drinking": "normal"},
        expected={"triage": "self_care"},
    )
    plain = await simulate_case(service, case, prefix="plain")
    shouting = Persona("shouting", _shout, _years)
    played = await simulate_case(service, case, prefix="loud", persona=shouting)
    assert (plain["persona"], plain["rewriter"]) == ("none", "none")
    assert (played["persona"], played["rewriter"]) == ("shouting", "rules")
    said = [turn["text"] for turn in played["transcript"] if turn["from"] == "patient"]
    assert said[0] == case.messages[0].upper()
    assert "30 years" in said
    assert played["triage"] == plain["triage"] == "self_care"
    assert played["questions"] == plain["questions"]
    quiet = Persona("quiet", _as_written, _as_written)
    unchanged = await simulate_case(service, case, prefix="quiet", persona=quiet)
    assert (unchanged["persona"], unchanged["rewriter"]) == ("quiet", "none")


CLI_CASES = [
    {"id": "c-1", "lang": "en", "age": 30, "sex": "F", "messages": ["fever since yesterday, no stiff neck"],
     "answers": {"drinking": "normal"}, "expected": {"triage": "self_care", "red_flag": False}},
    {"id": "c-2", "age": 4, "sex": "M", "messages": ["my son has a fever", "his neck is stiff now"],
     "expected": {"triage": "emergency", "red_flag": True}},
    {"id": "c-3", "lang": "zh", "age": 60, "sex": "M", "messages": ["胸痛，出冷汗，头晕"],
     "expected": {"triage": "emergency_ambulance", "red_flag": True}},
]  # fmt: skip


def test_simulate_with_personas_prints_a_row_per_persona(tmp_path: Path) -> None:
    rules = fixture_rules_dir(tmp_path)
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_text(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in CLI_CASES) + "\n", encoding="utf-8"
    )
    out = tmp_path / "results.jsonl"
    command = ["simulate", str(cases_file), "--rules", str(rules), "--out", str(out), "--personas", "all"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(CLI_CASES) * (len(PERSONAS) + 1)
    assert Counter(line["persona"] for line in lines) == Counter(
        {name: len(CLI_CASES) for name in ["none", *PERSONAS]}
    )
    assert all(line["rewriter"] in ("rules", "none") for line in lines)
    assert all(line["rewriter"] == "none" for line in lines if line["persona"] == "none")
    by_key = {(line["persona"], line["id"]): line for line in lines}
    assert by_key[("traditional", "c-3")]["rewriter"] == "rules"
    assert by_key[("traditional", "c-1")]["rewriter"] == "none"  # nothing Chinese to rewrite
    assert by_key[("parent", "c-1")]["rewriter"] == "none"  # an adult's case
    assert by_key[("parent", "c-2")]["rewriter"] == "rules"

    assert "cases: 3" in result.output  # the usual summary: the cases as written
    table = result.output[result.output.index("per persona:") :].splitlines()
    rows = {line.split()[0]: line for line in table[2:] if line.strip()}
    assert list(rows) == ["none", *PERSONAS]
    for name, row in rows.items():
        persona_lines = [line for line in lines if line["persona"] == name]
        correct = sum(bool(line["correct"]) for line in persona_lines)
        assert f"{100 * correct / len(persona_lines):.1f}%" in row, row
        caught = sum(line["red_flag"] for line in persona_lines if line["expected"].get("red_flag"))
        assert f"{100 * caught / 2:.1f}%" in row, row


def test_simulate_refuses_an_unknown_persona(tmp_path: Path) -> None:
    rules = fixture_rules_dir(tmp_path)
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_text(json.dumps(CLI_CASES[0]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["simulate", str(cases_file), "--rules", str(rules), "--personas", "shouty"]
    )
    assert result.exit_code != 0
    assert "shouty" in result.output
    assert "known: all, terse" in result.output
