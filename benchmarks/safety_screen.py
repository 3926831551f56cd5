"""Safety screen speed with the full shipped rule set.

Screens every message of the red-flag and benign test sets (cases/safety) many times and
reports messages per second and latency percentiles per message. Baseline, measured in the
same run on the same messages: the simplest possible screen, normalising the text and testing
every lexicon term with Python's `in` (no negation, no history, no numbers). The ratio says what
the real screen costs over that.

    .venv/bin/python benchmarks/safety_screen.py [--rounds 20]

Last line: `safety_screen_p99_us: <value>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from clinical import RULES_DIR
from dialog.ruleset import load_rules
from safety import Screener, normalise

ROOT = Path(__file__).resolve().parent.parent


def messages() -> list[str]:
    found = []
    for name in ("redflags.jsonl", "benign.jsonl"):
        for line in (ROOT / "cases" / "safety" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.extend(json.loads(line)["messages"])
    return found


def timed(function, texts: list[str], rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter_ns()
            function(text)
            samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rules = load_rules(RULES_DIR)
    screener = Screener(rules.lexicon, rules.red_flags)
    texts = messages()
    terms = [part.text for term in rules.lexicon.terms for part in term.parts]

    def naive(text: str) -> bool:
        folded = normalise(text)
        return any(term in folded for term in terms)

    timed(screener.screen, texts, 1)  # warm caches
    real = timed(screener.screen, texts, args.rounds)
    base = timed(naive, texts, args.rounds)
    print(
        f"rule set: {len(rules.red_flags.flags)} red flags, {len(rules.lexicon.terms)} terms, "
        f"{len(rules.lexicon.concepts)} concepts; {len(texts)} messages x {args.rounds} rounds"
    )
    for name, samples in (("screen", real), ("baseline (normalise + `in` per term)", base)):
        total_s = sum(samples) / 1e6
        print(
            f"{name}: {len(samples) / total_s:,.0f} msg/s  p50 {percentile(samples, 0.5):.1f} us  "
            f"p99 {percentile(samples, 0.99):.1f} us  mean {statistics.fmean(samples):.1f} us"
        )
    print(f"ratio screen/baseline mean latency: {statistics.fmean(real) / statistics.fmean(base):.2f}")
    print(f"safety_screen_p99_us: {percentile(real, 0.99):.1f}")


if __name__ == "__main__":
    main()
