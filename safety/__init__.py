"""Safety: red-flag and crisis screening, emergency and crisis replies, disclaimers, and the
guard on model output.

Owns: the concept lexicon matcher and text normalisation (reused by `dialog`), the red-flag
schema, the screen, the responses and the regions' numbers.
May import: nothing of the project (pure Python, pydantic, PyYAML, OpenCC, pyahocorasick, RapidFuzz,
pypinyin; word lists in `safety/wordlists/`).
"""

from safety.datafile import DataError, DataFileError
from safety.findings import Finding, Status
from safety.i18n import Localized, Source
from safety.levels import Level, TriageClass
from safety.lexicon import Lexicon
from safety.quantities import Quantities
from safety.redflags import RedFlag, RedFlagSet
from safety.regions import REGIONS, Region
from safety.responses import Responder
from safety.screen import Outcome, ScreenContext, Screener, ScreenResult
from safety.text import Lang, detect_language, normalise

__all__ = [
    "REGIONS",
    "DataError",
    "DataFileError",
    "Finding",
    "Lang",
    "Level",
    "Lexicon",
    "Localized",
    "Outcome",
    "Quantities",
    "RedFlag",
    "RedFlagSet",
    "Region",
    "Responder",
    "ScreenContext",
    "ScreenResult",
    "Screener",
    "Source",
    "Status",
    "TriageClass",
    "detect_language",
    "normalise",
]
