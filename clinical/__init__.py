"""Clinical data shipped with wenzhen: protocols, lexicon, red flags and locale texts (YAML).

Owns: nothing but data and the path to it. May import: nothing.
"""

from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent
