"""The case library and the safety sets, run through the simulator on the live rules.

These are the product's quality gates (issues 3 and 4): a protocol or red-flag edit that drops
below them fails the suite.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.report import Summary, summarise
from bot.simulator import read_cases, simulate_case
from dialog.ruleset import RuleSet
from dialog.service import ConsultationService
from safety import REGIONS
from storage.memory import MemoryStore

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"


def _run(rules: RuleSet, paths: list[Path]) -> list[dict[str, Any]]:
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")

    async def run_all() -> list[dict[str, Any]]:
        results = []
        for path in paths:
            for case in read_cases(path):
                result = await simulate_case(service, case)
                result["protocol_expected"] = (case.model_extra or {}).get("protocol")
                result["kind"] = (case.model_extra or {}).get("kind")
                results.append(result)
        return results

    return asyncio.run(run_all())


@pytest.fixture(scope="module")
def library(rules: RuleSet) -> list[dict[str, Any]]:
    return _run(rules, sorted((CASES_DIR / "library").glob("*.jsonl")))


@pytest.fixture(scope="module")
def red_flag_set(rules: RuleSet) -> list[dict[str, Any]]:
    return _run(rules, [CASES_DIR / "safety" / "redflags.jsonl"])


@pytest.fixture(scope="module")
def benign_set(rules: RuleSet) -> list[dict[str, Any]]:
    return _run(rules, [CASES_DIR / "safety" / "benign.jsonl"])


def _failures(results: list[dict[str, Any]], predicate: Any) -> str:
    return "\n".join(f"{r['id']}: got {r['triage']} want {r['expected']}" for r in results if predicate(r))


def test_library_is_big_and_bilingual(library: list[dict[str, Any]], rules: RuleSet) -> None:
    assert len(library) >= 300
    assert sum(r["lang"] == "zh" for r in library) >= 100
    self_care = [r for r in library if r["expected"].get("triage") == "self_care"]
    assert len(self_care) >= len(library) / 4
    per_protocol: dict[str, int] = {}
    for result in library:
        per_protocol[result["protocol_expected"]] = per_protocol.get(result["protocol_expected"], 0) + 1
    thin = {
        p: per_protocol.get(p, 0) for p in rules.protocols if p != "general" and per_protocol.get(p, 0) < 6
    }
    assert not thin, thin


def test_library_meets_the_accuracy_goals(library: list[dict[str, Any]]) -> None:
    summary: Summary = summarise(library)
    wrong = _failures(library, lambda r: r["correct"] is False)
    assert summary.overall.accuracy >= 90.0, wrong
    assert summary.overall.under_rate <= 2.0, _failures(library, lambda r: r["correct"] is False)
    for lang, tally in summary.by_lang.items():
        assert tally.accuracy >= 90.0, (lang, tally)
        assert tally.under_rate <= 2.0, (lang, tally)
    assert summary.by_class["self_care"].accuracy >= 85.0, summary.by_class["self_care"]
    assert summary.red_flag_recall == 100.0


def test_library_never_asks_a_question_twice(library: list[dict[str, Any]]) -> None:
    for result in library:
        questions = result["questions"]
        repeats = {q for q in questions if questions.count(q) > 1}
        assert not repeats, (result["id"], questions)


def test_every_library_case_reaches_a_disposition(library: list[dict[str, Any]]) -> None:
    stalled = [r["id"] for r in library if r["triage"] is None]
    assert not stalled


def test_red_flag_recall_is_complete(red_flag_set: list[dict[str, Any]]) -> None:
    assert len(red_flag_set) >= 300
    missed = [r for r in red_flag_set if not r["red_flag"]]
    assert not missed, "\n".join(f"{r['id']}: {r['transcript'][0]['text']}" for r in missed)


def test_benign_messages_rarely_alarm(benign_set: list[dict[str, Any]]) -> None:
    assert len(benign_set) >= 300
    alarms = [r for r in benign_set if r["red_flag"]]
    assert len(alarms) <= 0.03 * len(benign_set), "\n".join(
        f"{r['id']}: {r['transcript'][0]['text']}" for r in alarms
    )
