"""An in-process store: the simulator's (one process, thousands of short consultations)."""

from __future__ import annotations

from dialog.events import Escalation
from dialog.session import Case, Session


class MemoryStore:
    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}
        self.cases: dict[str, str] = {}
        self.escalations: list[Escalation] = []

    async def load(self, patient_id: str) -> Session | None:
        raw = self.sessions.get(patient_id)
        return Session.model_validate_json(raw) if raw else None

    async def save(self, session: Session) -> None:
        self.sessions[session.patient_id] = session.model_dump_json()
        if session.case is not None:
            await self.save_case(session.case)

    async def save_case(self, case: Case) -> None:
        self.cases[case.case_id] = case.model_dump_json()

    async def escalate(self, escalation: Escalation) -> None:
        self.escalations.append(escalation)

    async def forget(self, patient_id: str) -> int:
        removed = int(self.sessions.pop(patient_id, None) is not None)
        for case_id in [
            cid for cid, raw in self.cases.items() if Case.model_validate_json(raw).patient_id == patient_id
        ]:
            del self.cases[case_id]
            removed += 1
        before = len(self.escalations)
        self.escalations = [e for e in self.escalations if e.patient_id != patient_id]
        return removed + before - len(self.escalations)
