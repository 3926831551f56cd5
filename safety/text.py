"""Text normalisation, language detection and clause boundaries shared by every reader of text."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import opencc

Lang = Literal["en", "zh"]

_T2S = opencc.OpenCC("t2s")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'"})
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")

# Where a clause ends: negation and history never reach across these.
_CLAUSE_BREAK = re.compile(
    r"(?<!\d)\.|\.(?!\d)|[!?;\n。！？；，,]|\b(?:but|however|although|though|except|yet|whereas)\b"
    r"|但是|可是|(?<![喘透])不过|然而|就是|只是|但|却"
)


def normalise(text: str) -> str:
    """Fold a patient's text into the form that lexicon terms are written in.

    Full-width forms become half-width, Traditional characters become Simplified, English is
    lower-cased, typographic quotes become ASCII, and runs of whitespace become one space.
    """
    folded = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    if _CJK.search(folded):
        folded = _T2S.convert(folded)
    return _SPACES.sub(" ", folded).strip().lower()


def detect_language(text: str) -> Lang | None:
    """Chinese when Chinese characters make up a fair share of the letters, else English."""
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0 and latin_words == 0:
        return None
    return "zh" if cjk >= latin_words else "en"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


@dataclass(frozen=True, slots=True)
class Clauses:
    """Clause boundaries of one normalised text; `index(pos)` names the clause a position is in."""

    text: str
    breaks: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> Clauses:
        return cls(text, tuple(match.start() for match in _CLAUSE_BREAK.finditer(text)))

    def index(self, position: int) -> int:
        return bisect_right(self.breaks, position)

    def start(self, position: int) -> int:
        clause = self.index(position)
        if clause == 0:
            return 0
        boundary = self.breaks[clause - 1]
        match = _CLAUSE_BREAK.match(self.text, boundary)
        return boundary + (len(match.group(0)) if match else 1)

    def end(self, position: int) -> int:
        clause = self.index(position)
        return self.breaks[clause] if clause < len(self.breaks) else len(self.text)


def is_word_char(char: str) -> bool:
    """A character that continues an English word (CJK characters never do; an apostrophe does
    not either, so "baby's" matches the term "baby")."""
    return char.isascii() and char.isalnum()


@lru_cache(maxsize=4096)
def normalise_term(term: str) -> str:
    return normalise(term)
