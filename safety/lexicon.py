"""The concept lexicon: patients' words for findings, compiled into one Aho-Corasick automaton.

Term syntax (docs/protocol-format.md): English terms match whole words, a trailing `*` on a word
matches any ending, and ` ... ` joins parts that must appear in order within one clause with a
bounded gap. Chinese terms match as written. A term starting with `!` is an exclusion: where it
matches, its concept does not (想死 is crisis language, 想死你了 is "I miss you so much").
A term starting with `~` is a denial: a phrase that says the concept is absent ("breathing is
normal" denies laboured breathing, "no rash" denies a rash that does not fade); where it matches
and is itself stated, not denied or asked about, the concept is found denied, and the concept's
own words inside it are not read (喘气没问题, "breathing is no problem", holds 喘气;
`safety.findings` decides this, as it needs the denial's own status).
A term `@other_concept` includes another concept: wherever `other_concept` is found, so is this one
(`pregnant` includes `@missed_period`: a late period is read as a possible pregnancy, whether the
patient wrote "period is late" or the engine read "last period 7 weeks ago").

Misspellings: a second reading of the text with its slips put right (`safety.spelling`: "chset"
is "chest", 肚紫 is 肚子) is matched as well. What it adds to the matches as written is marked
`corrected` (a concept found as written there wins; an exclusion read only there holds only for
what was read there), and `corrections(text)` says which slips found something.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ahocorasick

from safety.spelling import Correction, Reading, Speller
from safety.text import Clauses, is_word_char, normalise_term

GAP_MARK = " ... "
INCLUDE_MARK = "@"
EXCLUSION_MARK = "!"
DENIAL_MARK = "~"
MAX_GAP_WORDS = 5
MAX_GAP_CHARS_ZH = 6
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class TermPart:
    text: str
    prefix: bool  # trailing `*`: the last word may continue
    bound_left: bool
    bound_right: bool


@dataclass(frozen=True, slots=True)
class Term:
    concept: str
    source: str
    parts: tuple[TermPart, ...]
    exclusion: bool = False  # `!term`: where it matches, the concept does not
    denial: bool = False  # `~term`: where it matches, the concept is denied


@dataclass(frozen=True, slots=True)
class Match:
    concept: str
    start: int
    end: int  # exclusive
    gaps: tuple[tuple[int, int], ...] = ()  # the words between the parts of a ` ... ` term
    corrected: bool = False  # found only once misspelt words were read as the lexicon's words


def parse_term(concept: str, raw: str) -> Term:
    """Split a written term into its parts; raises ValueError for an empty or malformed term."""
    exclusion = raw.startswith(EXCLUSION_MARK)
    denial = raw.startswith(DENIAL_MARK)
    body = raw.removeprefix(EXCLUSION_MARK) if exclusion else raw.removeprefix(DENIAL_MARK)
    pieces = [piece.strip() for piece in body.split(GAP_MARK.strip())]
    if any(not piece for piece in pieces):
        raise ValueError(f"term {raw!r} has an empty part")
    parts = []
    for piece in pieces:
        if "*" in piece.rstrip("*"):
            raise ValueError(f"term {raw!r}: `*` may only end a part (write `ulcer* ... mouth`)")
        prefix = piece.endswith("*")
        text = normalise_term(piece.rstrip("*").strip())
        if not text:
            raise ValueError(f"term {raw!r} has an empty part")
        parts.append(
            TermPart(
                text=text,
                prefix=prefix,
                bound_left=is_word_char(text[0]),
                bound_right=is_word_char(text[-1]) and not prefix,
            )
        )
    return Term(concept=concept, source=raw, parts=tuple(parts), exclusion=exclusion, denial=denial)


class Lexicon:
    """Finds every concept's terms in a normalised text in one pass (and once more in the text's
    spelling-corrected reading, when it has one)."""

    _CACHE_SIZE = 1024

    def __init__(self, terms: Mapping[str, Iterable[str]], *, spelling: bool = True) -> None:
        self.concepts: frozenset[str] = frozenset(terms)
        self.terms: list[Term] = []
        included_by: dict[str, set[str]] = defaultdict(set)
        for concept, raws in terms.items():
            for raw in raws:
                if raw.startswith(INCLUDE_MARK):
                    included = raw.removeprefix(INCLUDE_MARK).strip()
                    if included not in self.concepts:
                        raise ValueError(f"concept {concept}: {raw!r} names no concept of the lexicon")
                    included_by[included].add(concept)
                else:
                    self.terms.append(parse_term(concept, raw))
        self._includers = {c: _closure(c, included_by) for c in included_by}
        self._automaton = ahocorasick.Automaton()
        slots: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for term_index, term in enumerate(self.terms):
            for part_index, part in enumerate(term.parts):
                slots[part.text].append((term_index, part_index))
        for key, entries in slots.items():
            self._automaton.add_word(key, tuple(entries))
        if slots:
            self._automaton.make_automaton()
        self._empty = not slots
        self._speller = (
            Speller((part.text, part.prefix, term.concept) for term in self.terms for part in term.parts)
            if spelling and slots
            else None
        )
        self._used: dict[str, tuple[Correction, ...]] = {}

    def find(self, text: str, clauses: Clauses | None = None) -> list[Match]:
        """Concept matches in `text` (already normalised), longest first where they nest."""
        if self._empty or not text:
            return []
        clauses = clauses or Clauses.of(text)
        matches = self._raw(text, clauses)
        excluded = [m for m in matches if m.concept.startswith(EXCLUSION_MARK)]
        found = self._resolve(matches, excluded)
        used: tuple[Correction, ...] = ()
        if self._speller is not None:
            reading = self._speller.read(text, lambda: [span for m in matches for span in _segments(m)])
            corrected = self._corrected(reading, matches) if reading is not None else []
            if reading is not None and corrected:
                # an exclusion read only in the corrected text holds only for what was read there
                excluded += [m for m in corrected if m.concept.startswith(EXCLUSION_MARK)]
                extra = [
                    m
                    for m in self._resolve(corrected, excluded)
                    if not any(x.concept == m.concept and overlaps(x, m) for x in found)
                ]
                found += extra
                used = tuple(c for c in reading.corrections if any(_within(c, m) for m in extra))
        if len(self._used) >= self._CACHE_SIZE:
            self._used.clear()
        self._used[text] = used
        return _ordered(found)

    def _resolve(self, matches: list[Match], excluded: list[Match]) -> list[Match]:
        """The matches no exclusion overlaps, and the concepts that include theirs (an exclusion
        of the including concept holds for what it includes too)."""
        kept = _unexcluded([m for m in matches if not m.concept.startswith(EXCLUSION_MARK)], excluded)
        included = [  # a denial is not included: "no rash" denies what the word means, no more
            Match(outer, m.start, m.end, m.gaps, m.corrected)
            for m in kept
            if not m.concept.startswith(DENIAL_MARK)
            for outer in self.includers(m.concept)
        ]
        return kept + _unexcluded(included, excluded)

    def corrections(self, text: str) -> tuple[Correction, ...]:
        """The misspellings in `text` (normalised) that found a concept, as the last `find` of
        this text read them."""
        if text not in self._used:
            self.find(text)
        return self._used.get(text, ())

    def _corrected(self, reading: Reading, exact: list[Match]) -> list[Match]:
        """Matches in the corrected reading that a correction made, at their original positions;
        a concept found as written there already wins."""
        found = []
        for match in self._raw(reading.text, Clauses.of(reading.text)):
            if not any(reading.changed(start, end) for start, end in _segments(match)):
                continue
            start = reading.to_original(match.start)
            end = reading.to_original(match.end, end=True)
            gaps = tuple((reading.to_original(s), reading.to_original(e, end=True)) for s, e in match.gaps)
            mapped = Match(match.concept, start, end, gaps, corrected=True)
            if not any(m.concept == mapped.concept and overlaps(m, mapped) for m in exact):
                found.append(mapped)
        return found

    def _raw(self, text: str, clauses: Clauses) -> list[Match]:
        """Every term's matches as written, exclusions (`!concept`) included."""
        part_hits: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for last, entries in self._automaton.iter(text):
            for term_index, part_index in entries:
                part = self.terms[term_index].parts[part_index]
                span = _bounded_span(text, last - len(part.text) + 1, last + 1, part)
                if span is not None:
                    part_hits[(term_index, part_index)].append(span)
        matches: list[Match] = []
        for (term_index, part_index), spans in part_hits.items():
            term = self.terms[term_index]
            if part_index != 0:
                continue
            concept = term.concept
            if term.exclusion or term.denial:
                concept = (EXCLUSION_MARK if term.exclusion else DENIAL_MARK) + concept
            if len(term.parts) == 1:
                matches.extend(Match(concept, start, end) for start, end in spans)
            else:
                found = _assemble(text, clauses, term_index, term, spans, part_hits)
                matches.extend(Match(concept, m.start, m.end, m.gaps) for m in found)
        return matches

    def includers(self, concept: str) -> tuple[str, ...]:
        """The concepts that include `concept` (`@concept` terms), directly or through others."""
        return self._includers.get(concept, ())


def _unexcluded(matches: list[Match], excluded: list[Match]) -> list[Match]:
    if not excluded:
        return matches
    return [m for m in matches if not any(overlaps(m, x) and x.concept[1:] == m.concept for x in excluded)]


def _closure(concept: str, included_by: Mapping[str, set[str]]) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = [concept]
    while todo:
        for outer in included_by.get(todo.pop(), ()):
            if outer not in seen and outer != concept:
                seen.add(outer)
                todo.append(outer)
    return tuple(sorted(seen))


def _segments(match: Match) -> list[tuple[int, int]]:
    """The spans of a match's words, without the gaps between the parts of a ` ... ` term."""
    spans = []
    cursor = match.start
    for start, end in match.gaps:
        spans.append((cursor, start))
        cursor = end
    spans.append((cursor, match.end))
    return spans


def _within(correction: Correction, match: Match) -> bool:
    return match.start <= correction.start and correction.end <= match.end


def overlaps(a: Match, b: Match) -> bool:
    return a.start < b.end and b.start < a.end


def _bounded_span(text: str, start: int, end: int, part: TermPart) -> tuple[int, int] | None:
    if part.bound_left and start > 0 and is_word_char(text[start - 1]):
        return None
    if part.prefix:
        while end < len(text) and is_word_char(text[end]):
            end += 1
    elif part.bound_right and end < len(text) and is_word_char(text[end]):
        return None
    return start, end


def _assemble(
    text: str,
    clauses: Clauses,
    term_index: int,
    term: Term,
    first_spans: list[tuple[int, int]],
    part_hits: Mapping[tuple[int, int], list[tuple[int, int]]],
) -> Iterable[Match]:
    for start, end in first_spans:
        clause = clauses.index(start)
        cursor = end
        gaps: list[tuple[int, int]] = []
        for part_index in range(1, len(term.parts)):
            candidates = [
                span
                for span in part_hits.get((term_index, part_index), ())
                if span[0] >= cursor and clauses.index(span[0]) == clause and _gap_ok(text[cursor : span[0]])
            ]
            if not candidates:
                break
            following = min(candidates)
            gaps.append((cursor, following[0]))
            cursor = following[1]
        else:
            yield Match(term.concept, start, cursor, tuple(gaps))


def _gap_ok(gap: str) -> bool:
    if len(_WORD.findall(gap)) > MAX_GAP_WORDS:
        return False
    cjk = sum(1 for char in gap if not char.isascii() and not char.isspace())
    return cjk <= MAX_GAP_CHARS_ZH


def _ordered(matches: list[Match]) -> list[Match]:
    """Every match, once, in reading order.

    Nested matches are all kept: "worst headache of my life" is both a thunderclap headache and a
    headache. Where a nested word is not a finding of its own (口痛 inside 胸口痛), the lexicon
    says so with an exclusion term (`!胸口痛` under the mouth concept).
    """
    return sorted(set(matches), key=lambda m: (m.start, m.end, m.concept))
