"""Tolerant reading: misspelt English words and Chinese homophone slips read as the lexicon's words.

Patients type fast on small screens. The concept matcher (`safety.lexicon`) matches terms as
written; this module gives it a second reading of the text with the slips put right, for concept
matching only (negation, history, numbers and everything else read the original text), and what
the lexicon matched as written always stands.

English (`Speller.read_word`): a word of 4 letters or more, with no digit or apostrophe, that is
not a common English word (`wordlists/common_en.txt`: "chess" is not "chest") nor a negation, is
read as the lexicon word it is one Damerau-Levenshtein edit away from (two for lexicon words of 8
letters or more), first letter kept: "chset" is "chest", "hedache" "headache", "whezy" "wheezy";
a word-stem term reads the start of a word ("vomting" is "vomiting" for `vomit*`). A four-letter
word is read only through a dropped letter or two swapped ones. Among equally near words one that
sounds the same, then one with only letters dropped, is preferred; where different words are still
equally near, nothing is read. A word the lexicon lists itself is read as another only where it is
that word's misspelling ("pian" for pain). Real-word slips go in `wordlists/slips_en.txt` ("pane").

Chinese (`_ZhIndex`): characters that read (toneless pinyin) as a lexicon term of 2+ characters
are read as that term when they differ from it in at most half its characters, keep one of its
characters other than a particle, and change no negation, none of the commonest characters (but
的/得/地 for one another) and only characters that belong to a word of the term: 肚紫 is 肚子, 头云
is 头晕, 桑子疼 is 嗓子疼. Not where the characters are a common word themselves
(`wordlists/common_zh.txt`: 心急 is not 心悸) or a common word reaches into them from outside
(喝水都 is not 水痘), nor into what the lexicon matched as written, nor where two terms read alike.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import ahocorasick
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

MIN_LETTERS = 4  # shorter English words are never corrected
LONG_WORD = 8  # lexicon words this long or longer may be two edits away
_WORD = re.compile(r"[a-z0-9']+")
_LETTERS = re.compile(r"[a-z]+")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")
_MAX_ZH_WORD = 4
#: Chinese particles: a homophone reading needs a character of the term other than these kept as
#: written (药了 is no 咬了).
PARTICLES = frozenset("了的得地着过吗呢吧啊呀哦嘛啦")
#: A verb's result complement is as little of a term as a particle: 躺到 ("lay awake until") keeps
#: only the 到 of 烫到 (scalded), so it is no scald.
COMPLEMENTS = frozenset("到")
#: Particles that writers swap for one another (疼的厉害 for 疼得厉害): the one such change allowed
#: to a character of COMMON_CHARACTERS.
SWAPPED_PARTICLES = frozenset("的得地")
#: Characters that carry negation: never read as another character, nor another as them.
NEGATION_CHARACTERS = frozenset("不没无未别否非莫勿")
#: The 300 commonest characters (jieba 0.42.1's dictionary, single characters by frequency): as
#: written they are almost always meant, so a homophone reading never changes them (喝水都不喝 has
#: no 水痘, 每周都要痛 no 腰痛, 工地上被砸 no 上背).
COMMON_CHARACTERS = frozenset(
    "了是在和有他不我的人也为就这上年中你说一到都等着对来与地还要又大而之道以得她个后去将那但从月下把被于时只多过可并能好会出"
    "或日由里用所向已其给很看使前新想却它最见起小高更如再才便没走做让内及听成各事号至叫两当三本无此们家长市门正同吃天比米外即"
    "分问话打老自副跟笑则像较国死省住万因曾元呢手达头作该女开路约军称名二每属谁受带进先应吧县心占处区太点水南张今间总回山请者"
    "党段法连站第共另生全行倒快派啊相吗经按找口均种字入真拿城马干王据四子书仍难西东少次些钱北气近杀清学强写既若往台原发任美未"
    "杨兵非除边位鱼明设州直定越身重声五低坐儿极放金红朝爱知主您报类早虽面别初性型讲部送远反指乡方甚完常意队式左拉花电条剑"
)

#: English negations: never read as another word, whatever the lexicon holds.
_NEGATION_WORDS = (
    "no not never nothing without none nor neither nobody denies deny denied denying negative cannot "
    "dont doesnt didnt isnt wasnt hasnt havent arent hadnt aint cant wont couldnt shouldnt wouldnt "
    "neva nevr nothin nuthin"
)
NEGATIONS = frozenset(_NEGATION_WORDS.split())
#: English endings: a word of the lexicon is never read as itself with one of these.
INFLECTIONS = frozenset(("s", "es", "ed", "d", "ing", "er", "ers", "ly", "y"))
#: Endings after a word stem that lost a letter ("vomt|ing" is "vomit|ing"; "couh|g" is no "cough|g").
ENDINGS = INFLECTIONS | frozenset(
    ("", "in", "ion", "ions", "ation", "e", "a", "ia", "al", "ic", "ous", "ness")
)


@dataclass(frozen=True, slots=True)
class Correction:
    """One slip put right: `written` at [start, end) of the normalised text is read as `read_as`."""

    start: int
    end: int
    written: str
    read_as: str


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    new: str


@dataclass(frozen=True, slots=True)
class Reading:
    """The text with its slips put right, and the way back to positions in the original."""

    original: str
    text: str
    corrections: tuple[Correction, ...]
    edits: tuple[_Edit, ...]  # non-overlapping, in order
    _new_starts: tuple[int, ...]
    _shifts: tuple[int, ...]  # len(text) - len(original) after each edit

    @classmethod
    def of(cls, original: str, edits: Sequence[_Edit], corrections: Iterable[Correction]) -> Reading:
        pieces: list[str] = []
        new_starts: list[int] = []
        shifts: list[int] = []
        cursor = 0
        shift = 0
        for edit in edits:
            pieces.append(original[cursor : edit.start])
            new_starts.append(edit.start + shift)
            pieces.append(edit.new)
            shift += len(edit.new) - (edit.end - edit.start)
            shifts.append(shift)
            cursor = edit.end
        pieces.append(original[cursor:])
        ordered = tuple(sorted(set(corrections), key=lambda c: (c.start, c.end, c.read_as)))
        return cls(original, "".join(pieces), ordered, tuple(edits), tuple(new_starts), tuple(shifts))

    def to_original(self, position: int, *, end: bool = False) -> int:
        """A position of `text` as a position of `original`; inside a corrected word, its start
        (or, for the end of a span, its end)."""
        index = bisect_right(self._new_starts, position) - 1
        if index < 0:
            return position
        edit = self.edits[index]
        new_start = self._new_starts[index]
        if position == new_start:
            return edit.start
        if position < new_start + len(edit.new):
            return edit.end if end else edit.start
        return position - self._shifts[index]

    def changed(self, start: int, end: int) -> bool:
        """Whether [start, end) of `text` contains a corrected character."""
        for new_start, edit in zip(self._new_starts, self.edits, strict=True):
            if new_start < end and start < new_start + len(edit.new):
                return True
        return False


@dataclass(frozen=True, slots=True)
class _ZhCandidate:
    start: int
    end: int
    term: str


class Speller:
    """Reads slips in a normalised text as the words of a lexicon (its terms' parts)."""

    def __init__(self, parts: Iterable[tuple[str, bool, str]]) -> None:
        """`parts`: each term part's normalised text, whether its last word is a stem (`*`), and
        the term's concept."""
        words: set[str] = set()
        stems: set[str] = set()
        zh_terms: set[str] = set()
        self._concepts: dict[str, set[str]] = defaultdict(set)  # of each word and stem
        for text, prefix, concept in parts:
            if _CJK_RUN.fullmatch(text):
                zh_terms.add(text)
                continue
            found = _WORD.findall(text)
            for index, word in enumerate(found):
                is_stem = prefix and index == len(found) - 1
                (stems if is_stem else words).add(word)
                self._concepts[word + "*" if is_stem else word].add(concept)
        self.words = frozenset(words)
        self.stems = frozenset(stems)
        self._targets: dict[str, list[str]] = defaultdict(list)
        for word in sorted(words):
            if len(word) >= MIN_LETTERS and word.isalpha() and word.isascii():
                self._targets[word[0]].append(word)
        self._stem_targets: dict[str, list[str]] = defaultdict(list)
        for stem in sorted(stems):
            if len(stem) >= MIN_LETTERS and stem.isalpha() and stem.isascii():
                self._stem_targets[stem[0]].append(stem)
        self._slips = {written: read_as for written, read_as in slips_english().items() if read_as in words}
        self._en_cache: dict[str, str | None] = {}
        self._zh = _ZhIndex(zh_terms) if zh_terms else None

    def read(self, text: str, protected: Callable[[], Sequence[tuple[int, int]]] = tuple) -> Reading | None:
        """The text with its slips put right, or None when there is nothing to put right.
        `protected()`: the spans the lexicon matched as written; a Chinese character in one of
        them is never changed (asked for only where a homophone reading is in question)."""
        edits: list[_Edit] = []
        corrections: list[Correction] = []
        for match in _LETTERS.finditer(text):
            start, end = match.span()
            if (start > 0 and _word_char(text[start - 1])) or (end < len(text) and _word_char(text[end])):
                continue  # part of a word with a digit or an apostrophe ("he's", "2nd")
            read_as = self.read_word(match.group(0))
            if read_as is None:
                continue
            edits.append(_Edit(start, end, read_as))
            corrections.append(Correction(start, end, match.group(0), read_as))
        if self._zh is not None:
            zh_edits, zh_corrections = self._zh.read(text, protected)
            edits.extend(zh_edits)
            corrections.extend(zh_corrections)
        if not edits:
            return None
        return Reading.of(text, sorted(edits, key=lambda e: e.start), corrections)

    def read_word(self, word: str) -> str | None:
        """The lexicon word an English word is a slip of, or None (a common English word, a
        negation, too short, too far from any lexicon word, or ambiguous).

        A slip listed in `wordlists/slips_en.txt` is read whatever its distance ("pane"). A word
        the lexicon lists itself is read as another only where it is that word's variant, naming
        none of its concepts ("pian" in `pain: [pain, pian]` is "pain" for the terms written
        with "pain"); a word that starts with a word stem of the lexicon ("squeezin": `squeez*`)
        may still be read as a whole word of it ("squeezing")."""
        if word in self._en_cache:
            return self._en_cache[word]
        read_as = self._slips.get(word)
        if read_as is None and self._correctable(word):
            stemmed = any(word[:cut] in self.stems for cut in range(1, len(word) + 1))
            read_as = self._nearest(word, stems=not stemmed and word not in self.words)
            if read_as is not None and word in self.words and not self._variant(word, read_as):
                read_as = None
        if len(self._en_cache) > 8192:
            self._en_cache.clear()
        self._en_cache[word] = read_as
        return read_as

    def _variant(self, word: str, read_as: str) -> bool:
        """A word of the lexicon is read as another only where it is that word's misspelling:
        it names none of its concepts, and it is not the other's stem ("ectopic", "ectopics")."""
        inflection = read_as.startswith(word) and read_as[len(word) :] in INFLECTIONS
        return not inflection and self._concepts[word] <= self._concepts[read_as]

    @staticmethod
    def _correctable(word: str) -> bool:
        return len(word) >= MIN_LETTERS and word not in NEGATIONS and word not in common_english()

    def _nearest(self, word: str, *, stems: bool) -> str | None:
        """The nearest lexicon word; among equally near ones, one that sounds the same ("ancle":
        "ankle", not "angle"), then one the written word is a slip of by dropped letters only
        ("throt": "throat", not "throw"), then a whole word before a stem ("droped": "dropped",
        not `droop*`); among those still alike, the one whose concepts include all the others'
        ("fevr": "fever", not the lexicon's own misspelling "fevor"), or one word with its
        endings ("hurst": "hurts", not "hurt")."""
        found: dict[str, tuple[int, int, int, int]] = {}  # reading: (*_rank, 1 for a stem)
        concepts: dict[str, frozenset[str]] = {}
        targets = self._targets.get(word[0], ())
        for target, distance, _ in process.extract(
            word, targets, scorer=DamerauLevenshtein.distance, score_cutoff=2, limit=None
        ):
            if 0 < distance <= allowed_edits(target) and _plausible(word, target):
                found[target] = (*_rank(word, target, int(distance)), 0)
                concepts[target] = frozenset(self._concepts[target])
        stem_targets = self._stem_targets.get(word[0], ()) if stems else ()
        for cut in range(MIN_LETTERS, len(word) + 1) if stem_targets else ():
            start = word[:cut]
            for stem, distance, _ in process.extract(
                start, stem_targets, scorer=DamerauLevenshtein.distance, score_cutoff=2, limit=None
            ):
                edits = allowed_edits(stem)
                shorter = cut < len(stem) and not (_dropped_letters(start, stem) and word[cut:] in ENDINGS)
                if shorter or not _plausible(start, stem):
                    continue  # "snez|ing" is no "siez*"; a shorter start only lost letters ("vomt|ing")
                if 0 < distance <= edits and abs(cut - len(stem)) <= edits:
                    reading = stem + word[cut:]
                    rank = (*_rank(word[:cut], stem, int(distance)), 1)  # a whole word first
                    if reading not in found or rank < found[reading]:
                        found[reading] = rank
                        concepts[reading] = frozenset(self._concepts[stem + "*"])
        if not found:
            return None
        best = min(found.values())
        nearest = sorted(reading for reading, rank in found.items() if rank == best)
        if len(nearest) == 1:
            return nearest[0]
        widest = max(nearest, key=lambda r: (len(concepts[r]), -len(r), r))
        if all(concepts[r] <= concepts[widest] for r in nearest):
            return widest
        return _one_of(nearest, word)


def allowed_edits(target: str) -> int:
    """How many edits a slip of this lexicon word may be: none under 4 letters, one up to 7,
    two from 8."""
    if len(target) < MIN_LETTERS:
        return 0
    return 1 if len(target) < LONG_WORD else 2


_SOUNDS = ((re.compile(r"ph"), "f"), (re.compile(r"ck|c(?=[aoulr]|$)|q"), "k"), (re.compile(r"z"), "s"))


def _sound(word: str) -> str:
    for pattern, replacement in _SOUNDS:
        word = pattern.sub(replacement, word)
    return re.sub(r"(.)\1", r"\1", word.replace("y", "i"))


def _rank(written: str, target: str, distance: int) -> tuple[int, int, int]:
    """How near a reading is, nearest first: the edits, then 0 when the two sound the same
    ("ancle", "ankle"), then 0 when only letters were dropped ("throt", "throat")."""
    sounds = 0 if _sound(written) == _sound(target) else 1
    return distance, sounds, 0 if _dropped_letters(written, target) else 1


def _plausible(written: str, target: str) -> bool:
    """A four-letter word is read only through a dropped letter or two letters swapped ("tumy",
    "pian"), never a changed one: "asma" is no "asia"."""
    if len(written) > MIN_LETTERS:
        return True
    swapped = len(written) == len(target) and sorted(written) == sorted(target)
    return swapped or _dropped_letters(written, target)


def _dropped_letters(written: str, target: str) -> bool:
    """Whether `written` is `target` with some letters left out ("throt", "throat")."""
    letters = iter(target)
    return len(written) < len(target) and all(char in letters for char in written)


def _one_of(readings: list[str], word: str) -> str | None:
    """The reading, when the equally near ones are one word and its endings ("hurt", "hurts"):
    the one as long as the word written, else the shortest; None when they are different words."""
    if len(readings) == 1:
        return readings[0]
    shortest = min(readings, key=lambda r: (len(r), r))
    if not all(r.startswith(shortest) and len(r) - len(shortest) <= 3 for r in readings):
        return None
    same_length = sorted(r for r in readings if len(r) == len(word))
    return same_length[0] if same_length else shortest


def _word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "'")


def _inside(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


# ---- Chinese ------------------------------------------------------------------------------------


class _ZhIndex:
    """Lexicon terms of 2+ Chinese characters by their toneless pinyin, in one automaton over
    syllables padded to a fixed width ("|du______|zi______|"), so a match's end says which
    character it ends at."""

    def __init__(self, terms: Iterable[str]) -> None:
        keys: dict[str, set[str]] = defaultdict(set)
        terms = frozenset(terms)
        self._words = common_chinese()
        known = self._words | terms
        self._changeable = {term: _in_words(term, known) for term in terms}
        for term in terms:
            if NEGATION_CHARACTERS.isdisjoint(term):  # 不应, 叫不醒: a slip never makes a denial
                for reading in _term_readings(term):
                    keys["|" + "".join(syllable.ljust(_SLOT - 1, "_") + "|" for syllable in reading)].add(
                        term
                    )
        self._automaton = ahocorasick.Automaton()
        for key, found in keys.items():
            self._automaton.add_word(key, (key.count("|") - 1, tuple(sorted(found))))
        self._empty = not keys
        if keys:
            self._automaton.make_automaton()

    def read(
        self, text: str, protected: Callable[[], Sequence[tuple[int, int]]]
    ) -> tuple[list[_Edit], list[Correction]]:
        if self._empty:
            return [], []
        found = [
            hit for run in _CJK_RUN.finditer(text) for hit in self._hits(text, run.start(), run.group(0))
        ]
        if not found:
            return [], []
        spans = protected()
        candidates = [hit for hit in found if self._acceptable(text, hit, spans)]
        if not candidates:
            return [], []
        chosen: dict[int, str] = {}
        corrections = []
        for candidate in sorted(candidates, key=lambda c: (c.start - c.end, c.start)):
            changes = {
                candidate.start + i: char
                for i, char in enumerate(candidate.term)
                if text[candidate.start + i] != char
            }
            if any(chosen.get(position, char) != char for position, char in changes.items()):
                continue  # two readings disagree about a character: the longer one stands
            chosen.update(changes)
            written = text[candidate.start : candidate.end]
            corrections.append(Correction(candidate.start, candidate.end, written, candidate.term))
        edits = [_Edit(position, position + 1, char) for position, char in sorted(chosen.items())]
        return edits, corrections

    def _hits(self, text: str, offset: int, run: str) -> Iterable[_ZhCandidate]:
        """Spans of a run of characters that read as a term but are not written as it."""
        key = "|" + "".join(_padded(char) for char in run)
        for last, (length, terms) in self._automaton.iter(key):
            end = offset + last // _SLOT
            start = end - length
            if len(terms) == 1 and text[start:end] != terms[0]:  # two terms that read alike: neither
                yield _ZhCandidate(start, end, terms[0])

    def _acceptable(self, text: str, hit: _ZhCandidate, protected: Sequence[tuple[int, int]]) -> bool:
        start, end, term = hit.start, hit.end, hit.term
        written = text[start:end]
        changed = [start + i for i, char in enumerate(term) if written[i] != char]
        kept = [
            char
            for char, want in zip(written, term, strict=True)
            if char == want and char not in PARTICLES | COMPLEMENTS
        ]
        if len(changed) > len(term) // 2 or not kept:
            return False  # 逼疯 is no 被蜂, 药了 no 咬了: a slip changes a character or two, not the word
        if not all(_may_change(text[p], term[p - start]) for p in changed):
            return False  # 都要痛 is no 腰痛: a common character is meant as written
        if not all(self._changeable[term][p - start] for p in changed):
            return False  # 胎动挺好: 停 in 胎动停 is a word of its own, and 挺 starts the next one
        if any(_inside(p, p + 1, protected) for p in changed) or _straddles(start, end, protected):
            return False
        return not self._real_word_in_the_way(text, start, end)

    def _real_word_in_the_way(self, text: str, start: int, end: int) -> bool:
        """The span is a common word itself (心急 is no 心悸), or a common word reaches into it
        from outside and its outside part belongs to no other word (喝水都: 喝水 | 都, no 水痘; but
        有点头云 is 有点 | 头云, 点头 notwithstanding). A word wholly inside may stand (疼的利害)."""
        if text[start:end] in self._words:
            return True
        for word_start, word_end in self._words_at(text, max(0, start - _MAX_ZH_WORD + 1), end):
            if word_start < start < word_end:
                outside = (word_start, start)
            elif word_start < end < word_end:
                outside = (end, word_end)
            else:
                continue
            lo, hi = (0, start) if outside[1] <= start else (end, len(text))
            if not any(
                s <= outside[0] and outside[1] <= e and lo <= s and e <= hi
                for s, e in self._words_at(text, max(lo, outside[0] - _MAX_ZH_WORD + 1), outside[1])
            ):
                return True
        return False

    def _words_at(self, text: str, first: int, last: int) -> Iterable[tuple[int, int]]:
        """The common words of `text` that start at `first` up to (not including) `last`."""
        for word_start in range(first, last):
            for length in range(2, _MAX_ZH_WORD + 1):
                word_end = word_start + length
                if word_end <= len(text) and text[word_start:word_end] in self._words:
                    yield word_start, word_end


def _may_change(written: str, read_as: str) -> bool:
    """Whether a written character may be read as a homophone: never to or from a negation,
    and a common character only as a particle swapped for another (的 for 得)."""
    if written in NEGATION_CHARACTERS or read_as in NEGATION_CHARACTERS:
        return False
    if written in COMMON_CHARACTERS:
        return written in SWAPPED_PARTICLES and read_as in SWAPPED_PARTICLES
    return True


def _in_words(term: str, words: frozenset[str]) -> tuple[bool, ...]:
    """Which characters of a term belong to a word of it (a common word or a lexicon term of 2
    to 4 characters; a term of 2 characters is one word): only those may be read from a homophone.
    """
    if len(term) == 2:
        return (True, True)
    covered = [False] * len(term)
    for length in range(2, min(_MAX_ZH_WORD, len(term) - 1) + 1):
        for start in range(len(term) - length + 1):
            if term[start : start + length] in words:
                for position in range(start, start + length):
                    covered[position] = True
    return tuple(covered)


def _straddles(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    """A span matched as written reaches into the candidate from outside it (哮喘的: 喘的 is not
    read as 喘得, its 喘 belongs to 哮喘)."""
    return any((s < start < e < end) or (start < s < end < e) for s, e in spans)


def _toneless(reading: str) -> str:
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@cache
def _readings(char: str) -> tuple[str, ...]:
    """A character's toneless pinyin readings, the commonest first; ("#",) for none."""
    raw = _pinyin_table().get(ord(char))
    if not raw:
        return ("#",)
    readings: list[str] = []
    for reading in raw.split(","):
        toneless = _toneless(reading)
        if toneless and toneless not in readings:
            readings.append(toneless)
    return tuple(readings) or ("#",)


_SLOT = 8  # each character's reading in the automaton's text, padded: "du______|" (7 letters at most)


@cache
def _padded(char: str) -> str:
    return _readings(char)[0].ljust(_SLOT - 1, "_")[: _SLOT - 1] + "|"


@cache
def _term_readings(term: str) -> list[tuple[str, ...]]:
    """How a term reads: each character's commonest reading, and, where a character has several,
    the reading in this word (睡觉: shui jiao, not shui jue)."""
    options = [_readings(char) for char in term]
    if any(option == ("#",) for option in options):
        return []
    readings = [tuple(option[0] for option in options)]
    if any(len(option) > 1 for option in options):
        in_context = tuple(_toneless(reading) for reading in _word_pinyin(term))
        if len(in_context) == len(term) and in_context not in readings:
            readings.append(in_context)
    return readings


def _word_pinyin(term: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(term, style=Style.TONE)


@cache
def _pinyin_table() -> dict[int, str]:
    from pypinyin.pinyin_dict import pinyin_dict  # 0.2 s to load: only when a lexicon has Chinese terms

    return pinyin_dict


# ---- word lists ---------------------------------------------------------------------------------


def _word_list(name: str) -> frozenset[str]:
    text = resources.files("safety").joinpath("wordlists", name).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def common_english() -> frozenset[str]:
    """Real English words that are never corrected (`wordlists/common_en.txt`)."""
    return _word_list("common_en.txt")


@cache
def slips_english() -> dict[str, str]:
    """Slips read as a lexicon word whatever their distance (`wordlists/slips_en.txt`): "pane"."""
    pairs = (line.split() for line in _word_list("slips_en.txt"))
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


@cache
def common_chinese() -> frozenset[str]:
    """Real Chinese words that are never read as a homophone slip (`wordlists/common_zh.txt`)."""
    return _word_list("common_zh.txt")
