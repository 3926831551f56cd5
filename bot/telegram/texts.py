"""The texts the Telegram frontend adds of its own, read from the locale files (`telegram.*`)."""

from __future__ import annotations

from collections.abc import Callable

from dialog.ruleset import RuleSet
from safety import Lang, Region

TELEGRAM_COMMANDS = ("start", "restart", "help", "human", "forget", "language")
TELEGRAM_TEXT_KEYS = (
    "error.temporary",
    "telegram.throttled",
    *(f"telegram.commands.{name}" for name in TELEGRAM_COMMANDS),
)


class MissingTextsError(Exception):
    """The locale files lack texts the Telegram frontend needs."""


def language_of(hint: str | None, default: Lang) -> Lang:
    """A Telegram client's language code (e.g. `zh-hans`, `en-US`) as one of ours."""
    if not hint:
        return default
    return "zh" if hint.lower().startswith("zh") else "en"


class Texts:
    """Locale texts with the region's numbers filled in, from the rules in force (`rules()`: they
    change when operators reload them)."""

    def __init__(self, rules: Callable[[], RuleSet], region: Region) -> None:
        require_texts(rules(), TELEGRAM_TEXT_KEYS, "Telegram")
        self._rules = rules
        self._region = region

    def get(self, key: str, lang: Lang) -> str:
        return self._rules().text(key).get(lang).replace("{number}", self._region.emergency_number)


def require_texts(rules: RuleSet, keys: tuple[str, ...], what: str) -> None:
    """Raises MissingTextsError naming the texts `rules` lack."""
    missing = [key for key in keys if key not in rules.texts]
    if missing:
        raise MissingTextsError(
            f"{rules.directory / 'locales'}: texts missing for {what}: {', '.join(missing)}"
        )
