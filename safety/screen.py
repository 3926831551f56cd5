"""The screen every inbound message passes before anything else sees it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from safety.findings import Finding, Status, extract_findings
from safety.levels import Level, most_urgent
from safety.lexicon import Lexicon
from safety.quantities import FEVER_CELSIUS, Quantities, read_quantities
from safety.redflags import FlagKind, RedFlag, RedFlagSet
from safety.spelling import Correction
from safety.text import Clauses, normalise

FEVER = "fever"


class Outcome(StrEnum):
    CLEAR = "clear"
    ASK = "ask"  # a denied or historical finding: ask the direct safety question
    EMERGENCY = "emergency"
    CRISIS = "crisis"


@dataclass(frozen=True, slots=True)
class ScreenContext:
    """What the case already knows: findings present in earlier messages, age and sex."""

    present: frozenset[str] = frozenset()
    age: float | None = None
    sex: str | None = None
    max_temperature: float | None = None  # the highest temperature measured so far


@dataclass(frozen=True, slots=True)
class ScreenResult:
    outcome: Outcome
    text: str
    findings: tuple[Finding, ...] = ()
    quantities: Quantities = field(default_factory=Quantities)
    flags: tuple[RedFlag, ...] = ()
    ask_flag: RedFlag | None = None
    present: frozenset[str] = frozenset()
    # misspellings read as the lexicon's words to find these findings ("chset": "chest", 肚紫: 肚子)
    corrections: tuple[Correction, ...] = ()

    @property
    def level(self) -> Level | None:
        return most_urgent([flag.level for flag in self.flags])

    @property
    def negated(self) -> frozenset[str]:
        return frozenset(f.concept for f in self.findings if f.status is Status.NEGATED) - self.present

    @property
    def is_alarm(self) -> bool:
        return self.outcome in (Outcome.EMERGENCY, Outcome.CRISIS)


class Screener:
    """Red-flag and crisis screening over the lexicon; pure and fast (no I/O, no model)."""

    def __init__(self, lexicon: Lexicon, red_flags: RedFlagSet) -> None:
        self.lexicon = lexicon
        self.red_flags = red_flags
        self._by_concept: dict[str, list[RedFlag]] = defaultdict(list)
        for flag in red_flags.flags:
            for concept in flag.concepts:
                self._by_concept[concept].append(flag)

    def screen(
        self,
        text: str,
        context: ScreenContext = ScreenContext(),
        also_present: frozenset[str] = frozenset(),
    ) -> ScreenResult:
        """Screen one message in the context of the case; `also_present` carries findings from
        a button answer ("yes" to a question about a concept)."""
        normalised = normalise(text)
        clauses = Clauses.of(normalised)
        findings = tuple(extract_findings(normalised, self.lexicon, clauses))
        corrections = self.lexicon.corrections(normalised)
        quantities = read_quantities(normalised) if normalised else Quantities()
        now = {f.concept for f in findings if f.status is Status.PRESENT} | set(also_present)
        if quantities.has_fever:
            now.add(FEVER)
        present = frozenset(now)
        readings = [t for t in (context.max_temperature, quantities.temperature_c) if t is not None]
        afebrile = bool(readings) and max(readings) < FEVER_CELSIUS
        if afebrile:
            # "feels hot, 37.6": the complaint is still about fever, but a measured temperature
            # under 38 C is no fever for the red flags (NICE NG143), now or from earlier words
            now.discard(FEVER)
        flagged = frozenset(now)
        known = (context.present - ({FEVER} if afebrile else set())) | flagged
        age = context.age if context.age is not None else quantities.age_years
        sex = context.sex if context.sex is not None else quantities.sex

        fired = self._firing(flagged, known, age, sex)
        if fired:
            crisis = any(flag.kind is FlagKind.CRISIS for flag in fired)
            ordered = tuple(sorted(fired, key=lambda flag: (-flag.level.rank, flag.id)))
            return ScreenResult(
                Outcome.CRISIS if crisis else Outcome.EMERGENCY,
                normalised,
                findings,
                quantities,
                ordered,
                present=present,
                corrections=corrections,
            )

        ask_flag = self._ask(findings, present, known, age, sex)
        outcome = Outcome.ASK if ask_flag else Outcome.CLEAR
        return ScreenResult(outcome, normalised, findings, quantities, (), ask_flag, present, corrections)

    def _candidates(self, concepts: frozenset[str] | set[str]) -> set[RedFlag]:
        return {flag for concept in concepts for flag in self._by_concept.get(concept, ())}

    def _firing(
        self, now: frozenset[str], known: frozenset[str], age: float | None, sex: str | None
    ) -> list[RedFlag]:
        return [flag for flag in self._candidates(now) if _holds(flag, known, age, sex)]

    def _ask(
        self,
        findings: tuple[Finding, ...],
        present: frozenset[str],
        known: frozenset[str],
        age: float | None,
        sex: str | None,
    ) -> RedFlag | None:
        doubtful: dict[str, set[str]] = {"if_negated": set(), "if_historical": set()}
        for finding in findings:
            if finding.concept in present:
                continue
            if finding.status in (Status.NEGATED, Status.HYPOTHETICAL):
                doubtful["if_negated"].add(finding.concept)
            elif finding.status is Status.HISTORICAL:
                doubtful["if_historical"].add(finding.concept)
        for policy, concepts in doubtful.items():
            for flag in sorted(self._candidates(concepts), key=lambda f: (-f.level.rank, f.id)):
                if getattr(flag, policy) == "ask" and _holds(flag, known | concepts, age, sex):
                    return flag
        return None


def _holds(flag: RedFlag, known: frozenset[str], age: float | None, sex: str | None) -> bool:
    population = flag.population
    if age is None and (population.min_age is not None or population.max_age is not None):
        return False  # an age-bound flag waits for the age (the service screens again then)
    if not population.admits(age, sex):
        return False
    if not all(concept in known for concept in flag.all):
        return False
    return not flag.any or any(concept in known for concept in flag.any)
