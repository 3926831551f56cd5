"""Where the Telegram frontend hands escalations. The consultation service has already queued
them in storage for the doctor team; for now the frontend logs them (ids, reason and priority,
never message text). The doctor-team router will route them to the team's chat."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from dialog.events import Escalation

log = logging.getLogger(__name__)


class EscalationSink(Protocol):
    async def publish(self, escalation: Escalation) -> None: ...


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
