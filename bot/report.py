"""The simulator's summary: accuracy, under- and over-triage, red-flag recall, confusion matrix."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from safety import Level, TriageClass

_LEVEL_RANK = {level.value: level.rank for level in Level}
_CLASS_RANK = {cls.value: cls.rank for cls in TriageClass}


def _urgency_gap(result: Mapping[str, Any]) -> int | None:
    """Positive when the bot was more urgent than expected, negative when less; None if n/a."""
    expected = result["expected"].get("triage")
    if expected is None:
        return None
    if result["triage"] is None:
        return -99  # no disposition at all: counted as under-triage
    if expected in _CLASS_RANK:
        return _CLASS_RANK[result["triage3"]] - _CLASS_RANK[expected]
    return _LEVEL_RANK[result["triage"]] - _LEVEL_RANK[expected]


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    under: int = 0
    over: int = 0
    stalled: int = 0

    def add(self, result: Mapping[str, Any]) -> None:
        gap = _urgency_gap(result)
        if gap is None:
            return
        self.total += 1
        self.correct += bool(result["correct"])
        self.under += gap < 0
        self.over += gap > 0
        self.stalled += result["triage"] is None

    def pct(self, count: int) -> float:
        return 100.0 * count / self.total if self.total else 0.0

    @property
    def accuracy(self) -> float:
        return self.pct(self.correct)

    @property
    def under_rate(self) -> float:
        return self.pct(self.under)

    @property
    def over_rate(self) -> float:
        return self.pct(self.over)


@dataclass
class Summary:
    overall: Tally = field(default_factory=Tally)
    by_class: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_lang: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_group: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    red_flag_expected: int = 0
    red_flag_caught: int = 0
    red_flag_benign: int = 0
    red_flag_false: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    cases: int = 0

    @property
    def red_flag_recall(self) -> float:
        return 100.0 * self.red_flag_caught / self.red_flag_expected if self.red_flag_expected else 100.0

    @property
    def false_alarm_rate(self) -> float:
        return 100.0 * self.red_flag_false / self.red_flag_benign if self.red_flag_benign else 0.0


def _expected_class(expected: str) -> str:
    return expected if expected in _CLASS_RANK else Level(expected).triage_class.value


def summarise(results: Iterable[Mapping[str, Any]], group_by: str | None = None) -> Summary:
    summary = Summary()
    for result in results:
        summary.cases += 1
        expected = result["expected"]
        if "triage" in expected:
            summary.overall.add(result)
            summary.by_class[_expected_class(expected["triage"])].add(result)
            summary.by_lang[result.get("lang") or "?"].add(result)
            if group_by and result.get(group_by):
                summary.by_group[str(result[group_by])].add(result)
            summary.confusion[(_expected_class(expected["triage"]), result["triage3"] or "none")] += 1
        if expected.get("red_flag") is True:
            summary.red_flag_expected += 1
            summary.red_flag_caught += bool(result["red_flag"])
        elif expected.get("red_flag") is False:
            summary.red_flag_benign += 1
            summary.red_flag_false += bool(result["red_flag"])
    return summary


def render(summary: Summary) -> str:
    lines = [f"cases: {summary.cases}"]
    o = summary.overall
    if o.total:
        lines.append(
            f"accuracy: {o.accuracy:.1f}% ({o.correct}/{o.total})   "
            f"under-triage: {o.under_rate:.1f}% ({o.under})   "
            f"over-triage: {o.over_rate:.1f}% ({o.over})   no disposition: {o.stalled}"
        )
        for title, table in (
            ("per expected class", summary.by_class),
            ("per language", summary.by_lang),
            ("per group", summary.by_group),
        ):
            if not table:
                continue
            lines.append(f"{title}:")
            for name in sorted(table):
                t = table[name]
                lines.append(
                    f"  {name:<16} n={t.total:<4} accuracy {t.accuracy:5.1f}%  "
                    f"under {t.under_rate:4.1f}%  over {t.over_rate:4.1f}%"
                )
        classes = [c.value for c in TriageClass][::-1]
        lines.append("confusion (rows expected, columns given):")
        lines.append("  " + " " * 16 + "".join(f"{c:>15}" for c in [*classes, "none"]))
        for row in classes:
            cells = "".join(f"{summary.confusion[(row, col)]:>15}" for col in [*classes, "none"])
            lines.append(f"  {row:<16}{cells}")
    if summary.red_flag_expected:
        lines.append(
            f"red-flag recall: {summary.red_flag_recall:.1f}% "
            f"({summary.red_flag_caught}/{summary.red_flag_expected})"
        )
    if summary.red_flag_benign:
        lines.append(
            f"false alarms: {summary.false_alarm_rate:.1f}% "
            f"({summary.red_flag_false}/{summary.red_flag_benign})"
        )
    return "\n".join(lines)


def by_persona(results: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Result lines grouped by the persona that played them (`none`: the case as written), in
    the order they first appear."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for result in results:
        groups[str(result.get("persona") or "none")].append(result)
    return dict(groups)


def render_personas(results: Iterable[Mapping[str, Any]]) -> str:
    """One row per persona: accuracy (and its change from the cases as written), under- and
    over-triage, red-flag recall and false alarms, each from `summarise` on that persona's
    results; `rewritten` counts the cases whose words the persona changed (the others were
    played as written: a parent persona leaves adults' cases alone)."""
    groups = by_persona(results)
    summaries = {name: summarise(rows) for name, rows in groups.items()}
    baseline = summaries.get("none")
    header = (
        f"{'persona':<12} {'rewriter':<9} {'cases':>5} {'rewritten':>9} {'accuracy':>9} {'change':>7} "
        f"{'under':>6} {'over':>6} {'no disp':>7} {'red-flag recall':>15} {'false alarms':>12}"
    )
    lines = ["per persona:", header]
    for name, summary in summaries.items():
        rows = groups[name]
        rewriters = sorted({str(r.get("rewriter")) for r in rows} - {"none", "None"})
        rewritten = sum(1 for r in rows if r.get("rewriter") not in (None, "none"))
        o = summary.overall
        change = f"{o.accuracy - baseline.overall.accuracy:+.1f}" if baseline and name != "none" else ""
        recall = f"{summary.red_flag_recall:.1f}%" if summary.red_flag_expected else "-"
        alarms = f"{summary.false_alarm_rate:.1f}%" if summary.red_flag_benign else "-"
        lines.append(
            f"{name:<12} {'/'.join(rewriters) or 'none':<9} {summary.cases:>5} {rewritten:>9} "
            f"{o.accuracy:>8.1f}% {change:>7} {o.under_rate:>5.1f}% {o.over_rate:>5.1f}% {o.stalled:>7} "
            f"{recall:>15} {alarms:>12}"
        )
    return "\n".join(lines)
