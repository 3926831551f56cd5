"""A case for the clinic's records: the case record (answers, triage and the rule behind it, the
transcript), the doctor team's ticket and the audit trail, as one JSON document
(`wenzhen cases export CASE_ID`).

Each part is there as long as it is kept (README, "Privacy"): the case record and ticket for
`retention_days`, the audit trail for `retention_audit_days`; a part no longer kept is null (or an
empty trail). Nothing is left to export after the patient's /forget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from dialog.session import Case, utcnow
from dialog.team import AuditEntry, Ticket
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard

FORMAT: Final = "wenzhen.case-export/1"


class CaseExport(BaseModel):
    format: Literal["wenzhen.case-export/1"] = FORMAT
    exported_at: datetime = Field(default_factory=utcnow)
    case_id: str
    case: Case | None
    ticket: Ticket | None
    audit: list[AuditEntry]


async def export_case(redis: Redis, case_id: str, *, prefix: str = "wz:") -> CaseExport | None:
    """Everything kept about `case_id`, or None when nothing is (unknown, expired or forgotten)."""
    case = await RedisStore(redis, prefix=prefix).load_case(case_id)
    board = TeamBoard(redis, prefix=prefix)
    ticket = await board.get(case_id)
    audit = await board.audit(case_id)
    if case is None and ticket is None and not audit:
        return None
    return CaseExport(case_id=case_id, case=case, ticket=ticket, audit=audit)
