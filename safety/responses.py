"""Emergency and crisis replies, the safety question, and disclaimers: written by code from
operator texts, never by the model, so they go out even when the model or Redis is down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from safety.i18n import Localized
from safety.redflags import FirstAid, RedFlag
from safety.regions import Region
from safety.screen import ScreenResult
from safety.text import Lang

SAFETY_TEXT_KEYS = (
    "emergency_call",
    "emergency_why",
    "first_aid_intro",
    "team_alerted",
    "emergency_followup",
    "crisis_open",
    "crisis_lines",
    "crisis_text_option",
    "crisis_danger",
    "crisis_stay",
    "crisis_followup",
    "disclaimer",
)


class Responder:
    """Builds the safety layer's own messages in the patient's language."""

    def __init__(
        self, texts: Mapping[str, Localized], region: Region, first_aid: Mapping[str, FirstAid]
    ) -> None:
        missing = [key for key in SAFETY_TEXT_KEYS if key not in texts]
        if missing:
            raise ValueError(f"locale texts lack safety keys: {', '.join(missing)}")
        self.texts = texts
        self.region = region
        self.first_aid = first_aid

    def _t(self, key: str, lang: Lang, **values: str) -> str:
        defaults = {"number": self.region.emergency_number}
        return self.texts[key].get(lang).format(**(defaults | values))

    def emergency(self, result: ScreenResult, lang: Lang) -> str:
        """Call-now reply: number first, why, short first-aid steps, and that the team knows."""
        flags = [flag for flag in result.flags if flag.kind == "emergency"] or list(result.flags)
        lines = [self._t("emergency_call", lang)]
        reasons = _unique(flag.reason.get(lang) for flag in flags)
        if reasons:
            lines.append(self._t("emergency_why", lang, reason=" ".join(reasons[:2])))
        steps = self._first_aid_steps(flags, lang)
        if steps:
            lines.append(self._t("first_aid_intro", lang))
            lines.extend(f"• {step}" for step in steps)
        lines.append(self._t("team_alerted", lang))
        return "\n".join(lines)

    def crisis(self, result: ScreenResult, lang: Lang) -> str:
        """Crisis reply: warmth, then the crisis lines in the second sentence, then the rest."""
        lines = [
            self._t("crisis_open", lang) + " " + self._t("crisis_lines", lang, lines=self.crisis_lines(lang)),
        ]
        texting = [line for line in self.region.crisis_lines if line.can_text]
        if texting:
            lines.append(self._t("crisis_text_option", lang, number=texting[0].number))
        lines.append(self._t("crisis_danger", lang))
        if any(flag.kind == "emergency" for flag in result.flags):
            lines.append(self.emergency(result, lang))
        lines.append(self._t("crisis_stay", lang))
        return "\n\n".join(lines)

    def crisis_followup(self, lang: Lang) -> str:
        return self._t("crisis_followup", lang, lines=self.crisis_lines(lang))

    def emergency_followup(self, lang: Lang) -> str:
        return self._t("emergency_followup", lang)

    def crisis_lines(self, lang: Lang) -> str:
        separator = "；" if lang == "zh" else "; "
        return separator.join(f"{line.name.get(lang)} {line.number}" for line in self.region.crisis_lines)

    def safety_question(self, flag: RedFlag, lang: Lang) -> str:
        assert flag.ask is not None
        return flag.ask.get(lang)

    def disclaimer(self, lang: Lang) -> str:
        return self._t("disclaimer", lang)

    def _first_aid_steps(self, flags: list[RedFlag], lang: Lang) -> list[str]:
        ids = _unique(aid for flag in flags for aid in flag.first_aid)
        return [self.first_aid[aid].text.get(lang) for aid in ids[:4] if aid in self.first_aid]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
