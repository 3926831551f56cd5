"""Operators' checks of a rules edit: run the case library against a rule set (`rules test`) or
against two (`rules diff`) through the same simulator, and report what changes."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.simulator import SimCase, read_cases, simulate_case
from dialog.ruleset import RuleSet
from dialog.service import ConsultationService
from safety import REGIONS
from storage.memory import MemoryStore

Result = dict[str, Any]


def case_files(paths: Sequence[Path]) -> list[Path]:
    """JSON Lines files named directly or found in named folders."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.jsonl")) if path.is_dir() else [path])
    return found


def run_cases(rules: RuleSet, files: Iterable[Path]) -> list[Result]:
    cases: list[SimCase] = [case for path in files for case in read_cases(path)]
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")

    async def run() -> list[Result]:
        return [await simulate_case(service, case) for case in cases]

    return asyncio.run(run())


def failures(results: Iterable[Result]) -> list[Result]:
    """Cases that miss their expectation: the level, or whether the safety screen fired."""
    return [
        r
        for r in results
        if r["correct"] is False
        or ("red_flag" in r["expected"] and r["expected"]["red_flag"] != r["red_flag"])
    ]


def describe_failure(result: Result) -> str:
    expected = result["expected"]
    parts = [f"{result['id']}: expected {expected.get('triage', '-')}"]
    if "red_flag" in expected:
        parts.append(f"(red flag {'yes' if expected['red_flag'] else 'no'})")
    parts.append(
        f"got {result['triage']} (red flag {'yes' if result['red_flag'] else 'no'}) by {result['rule']}"
    )
    return " ".join(parts)


@dataclass(frozen=True)
class Change:
    case_id: str
    before: Result
    after: Result

    @property
    def what(self) -> list[str]:
        changed = []
        for field in ("triage", "red_flag", "rule", "questions"):
            if self.before[field] != self.after[field]:
                changed.append(field)
        return changed


def compare(old: Sequence[Result], new: Sequence[Result]) -> list[Change]:
    """Every case whose level, questions, red flag or deciding rule differs between the runs."""
    before = {r["id"]: r for r in old}
    return [
        Change(r["id"], before[r["id"]], r)
        for r in new
        if r["id"] in before
        and any(before[r["id"]][f] != r[f] for f in ("triage", "red_flag", "rule", "questions"))
    ]


def render_text(changes: Sequence[Change]) -> str:
    if not changes:
        return "no case changes"
    lines = [f"{len(changes)} case(s) change:"]
    for change in changes:
        b, a = change.before, change.after
        lines.append(f"- {change.case_id} ({', '.join(change.what)})")
        lines.append(
            f"    before: {b['triage']} by {b['rule']}, red flag {b['red_flag']}, asked {b['questions']}"
        )
        lines.append(
            f"    after:  {a['triage']} by {a['rule']}, red flag {a['red_flag']}, asked {a['questions']}"
        )
        expected = a["expected"].get("triage")
        if expected:
            lines.append(f"    expected: {expected}; after is {'right' if a['correct'] else 'WRONG'}")
    return "\n".join(lines)


def render_html(changes: Sequence[Change], old_label: str, new_label: str) -> str:
    rows = []
    for change in changes:
        b, a = change.before, change.after
        wrong = a["correct"] is False
        rows.append(
            "<tr{cls}><td>{id}</td><td>{what}</td><td>{bt}<br><small>{br}</small></td>"
            "<td>{at}<br><small>{ar}</small></td><td>{exp}</td></tr>".format(
                cls=' class="wrong"' if wrong else "",
                id=html.escape(change.case_id),
                what=html.escape(", ".join(change.what)),
                bt=html.escape(str(b["triage"])),
                br=html.escape(str(b["rule"])),
                at=html.escape(str(a["triage"])),
                ar=html.escape(str(a["rule"])),
                exp=html.escape(str(a["expected"].get("triage", "-"))),
            )
        )
    body = "\n".join(rows) or '<tr><td colspan="5">no case changes</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>wenzhen rules diff</title>
<style>body{{font-family:sans-serif;margin:1rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.3rem;vertical-align:top}}tr.wrong{{background:#fdd}}</style>
</head><body><h1>Rules diff</h1><p>{html.escape(old_label)} &rarr; {html.escape(new_label)}:
{len(changes)} case(s) change.</p>
<table><tr><th>case</th><th>changed</th><th>before</th><th>after</th><th>expected</th></tr>
{body}
</table></body></html>
"""
