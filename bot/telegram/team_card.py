"""What the team sees of a flagged case in its Telegram group: the topic title and the case card
(alias, age, sex, complaint, answers, level and the rule behind it, red flags, the model's SBAR
summary), in the team's language, from the locale files' `team.*` texts. Pure functions."""

from __future__ import annotations

import html
from collections.abc import Callable

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.telegram.texts import require_texts
from dialog.ruleset import RuleSet
from dialog.session import AnswerValue, Case
from dialog.team import Ticket, TicketStatus
from safety import Lang

TOPIC_TITLE_LIMIT = 128  # Telegram's limit for a forum topic's name
CLAIM, CLOSE = "team:claim:", "team:close:"
_URGENCY_MARK = {"emergency_ambulance": "🔴", "emergency": "🟠", "consultation_24": "🟡"}


TEAM_TEXT_KEYS = (
    *("title", "card", "reasons", "patient", "complaint", "answers", "level", "rule", "red_flags", "sbar"),
    *("status_open", "status_claimed", "status_closed", "claim", "close", "claimed", "closed"),
    *("reflagged", "realert", "realert_direct", "refused", "not_member", "unknown_topic"),
    *("delivered_media", "patient_says"),
    *(f"reason_{r}" for r in ("red_flag", "crisis", "patient_request", "level", "low_confidence")),
)


class TeamTexts:
    """The `team.*` texts of the rules in force (`rules()`: they change when operators reload)."""

    def __init__(self, rules: Callable[[], RuleSet]) -> None:
        require_texts(rules(), tuple(f"team.{key}" for key in TEAM_TEXT_KEYS), "the team")
        self._rules = rules

    @property
    def rules(self) -> RuleSet:
        return self._rules()

    def get(self, key: str, lang: Lang, **values: object) -> str:
        return self.rules.text(f"team.{key}").get(lang).format(**values)

    def level(self, ticket: Ticket, lang: Lang) -> str:
        if ticket.level is None:
            return "-"
        return self.rules.text(f"level.{ticket.level.value}").get(lang).replace("{number}", "").strip()

    def reasons(self, ticket: Ticket, lang: Lang) -> str:
        return ", ".join(self.get(f"reason_{reason}", lang) for reason in ticket.reasons)


def topic_title(texts: TeamTexts, ticket: Ticket, lang: Lang) -> str:
    mark = _URGENCY_MARK.get(ticket.level.value if ticket.level else "", "⚪")
    crisis = "🆘 " if "crisis" in ticket.reasons else ""
    level = ticket.level.value if ticket.level else "-"
    title = f"{crisis}{mark} " + texts.get(
        "title", lang, alias=ticket.alias, level=level, complaint=ticket.complaint or "?"
    )
    return title[:TOPIC_TITLE_LIMIT]


def card_text(texts: TeamTexts, ticket: Ticket, case: Case | None, doctor: str | None, lang: Lang) -> str:
    """The card as Telegram HTML (patients' words are escaped)."""
    say = texts.get
    status = {
        TicketStatus.OPEN: say("status_open", lang),
        TicketStatus.CLAIMED: say("status_claimed", lang, doctor=doctor or ticket.claimed_by or "?"),
        TicketStatus.CLOSED: say("status_closed", lang),
    }[ticket.status]
    person = ", ".join(
        str(part)
        for part in (
            _age(ticket.age),
            ticket.sex if ticket.sex in ("M", "F") else None,
            case.who if case is not None and case.who else None,
        )
        if part
    )
    lines = [
        f"<b>{html.escape(say('card', lang, alias=ticket.alias))}</b> — {html.escape(status)}",
        f"<b>{say('reasons', lang)}</b>: {html.escape(texts.reasons(ticket, lang))}",
        f"<b>{say('patient', lang)}</b>: {html.escape(person or '-')}",
        f"<b>{say('complaint', lang)}</b>: {html.escape(ticket.complaint or '-')}",
        f"<b>{say('level', lang)}</b>: {html.escape(texts.level(ticket, lang))}",
        f"<b>{say('rule', lang)}</b>: <code>{html.escape(ticket.rule or '-')}</code>",
    ]
    if ticket.flags:
        lines.append(f"<b>{say('red_flags', lang)}</b>: {html.escape(', '.join(ticket.flags))}")
    answers = describe_answers(texts.rules, case, lang) if case is not None else []
    if answers:
        lines.append(f"<b>{say('answers', lang)}</b>:")
        lines.extend(f"• {html.escape(question)} — {html.escape(answer)}" for question, answer in answers)
    if ticket.sbar:
        lines.append(f"<b>{say('sbar', lang)}</b>:\n{html.escape(ticket.sbar)}")
    return "\n".join(lines)


def card_buttons(texts: TeamTexts, ticket: Ticket, lang: Lang) -> InlineKeyboardMarkup | None:
    if ticket.status is TicketStatus.CLOSED:
        return None
    builder = InlineKeyboardBuilder()
    if ticket.status is TicketStatus.OPEN:
        builder.button(text=texts.get("claim", lang), callback_data=CLAIM + ticket.case_id)
    builder.button(text=texts.get("close", lang), callback_data=CLOSE + ticket.case_id)
    return builder.as_markup()


def describe_answers(rules: RuleSet, case: Case, lang: Lang) -> list[tuple[str, str]]:
    """The case's answers as (question as asked, answer as offered), in the team's language."""
    described = []
    for question_id, value in case.answers.items():
        question = next(
            (
                q
                for protocol_id in case.protocols
                if (protocol := rules.protocols.get(protocol_id)) is not None
                for q in protocol.questions
                if q.id == question_id
            ),
            None,
        )
        if question is None:
            described.append((question_id, _plain(value)))
            continue
        label = next((c.text.get(lang) for c in question.choices if c.id == value), None)
        if label is None and value in ("yes", "no", "unsure"):
            label = rules.text(f"answer.{value}").get(lang)
        described.append((question.ask.get(lang), label or _plain(value)))
    return described


def _plain(value: AnswerValue) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _age(age: float | str | None) -> str | None:
    if age is None or age == "unsure":
        return None
    if isinstance(age, float | int):
        return f"{age:g}y" if age >= 2 else f"{round(float(age) * 12)}m"
    return str(age)
