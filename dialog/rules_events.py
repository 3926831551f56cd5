"""What happened to the rules in force: versions going live, edits rejected, rollbacks.

Written by the rules keeper (`bot/rules_keeper.py`) through `storage.rules_history`, read by the
`wenzhen rules history` command and the dashboard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dialog.session import utcnow

RulesAction = Literal["started", "reloaded", "rejected"]


class RulesEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str  # the version this event is about (for `rejected`: the edit that was refused)
    previous: str | None = None  # the version live before
    at: datetime = Field(default_factory=utcnow)
    who: str  # a team member's id, "file change", "start" or "command line"
    action: RulesAction
    files_changed: list[str] = Field(default_factory=list)
    report: str = ""  # validation errors, the regressions, or what the edit changes in the library


class RulesStatus(BaseModel):
    """The rules in force now, and the last thing that happened to them."""

    model_config = ConfigDict(frozen=True)

    live_version: str
    directory: str
    since: datetime
    last: RulesEvent
