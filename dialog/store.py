"""The storage interface the consultation service needs; `storage/` implements it."""

from __future__ import annotations

from typing import Protocol

from dialog.events import Escalation
from dialog.session import Case, Session


class StoreUnavailableError(Exception):
    """Storage cannot be reached right now (e.g. Redis is down)."""


class Store(Protocol):
    async def load(self, patient_id: str) -> Session | None:
        """The patient's session, or None for a new patient. Raises StoreUnavailableError."""

    async def save(self, session: Session) -> None:
        """Persist the session and the case it carries. Raises StoreUnavailableError."""

    async def save_case(self, case: Case) -> None:
        """Persist a case record (also done by `save` for the current case)."""

    async def escalate(self, escalation: Escalation) -> None:
        """Queue a case for the family-doctor team."""

    async def forget(self, patient_id: str) -> int:
        """Delete everything kept about a patient; returns the number of records removed."""
