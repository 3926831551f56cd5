"""Where the Telegram frontend hands escalations and, while a doctor has a case, the patient's
messages for the doctor. With teams configured that is the team desk (`team_desk.TeamDesk`);
without, they are logged (ids, reason and priority, never message text)."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from aiogram import Bot

from dialog.events import Escalation, Relay

log = logging.getLogger(__name__)


class EscalationSink(Protocol):
    async def publish(self, escalation: Escalation) -> None: ...

    async def relay(self, bot: Bot, relay: Relay, chat_id: int, message_id: int | None) -> None:
        """Pass a patient's message (`message_id` in `chat_id`) on to the doctor who has the case."""


def alias(patient_id: str) -> str:
    """A stable pseudonym for logs (the same one the consultation service uses)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, patient_id).hex[:8]


class LogEscalations:
    async def publish(self, escalation: Escalation) -> None:
        log.warning(
            "escalation case=%s patient=%s reason=%s priority=%d level=%s flags=%s",
            escalation.case_id,
            alias(escalation.patient_id),
            escalation.reason,
            escalation.priority,
            escalation.level.value if escalation.level else "-",
            ",".join(escalation.flags) or "-",
        )

    async def relay(self, bot: Bot, relay: Relay, chat_id: int, message_id: int | None) -> None:
        log.warning("case %s: a message for the doctor, but no team is configured", relay.case_id)
