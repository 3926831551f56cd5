"""A scripted patient for service tests: send text or tap buttons, read what came back."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from clinical import RULES_DIR
from dialog.events import Escalation, Inbound, Outbound, Reply
from dialog.service import ConsultationService

FIXTURE_RULES = Path(__file__).resolve().parent / "fixtures" / "rules"


def fixture_rules_dir(tmp: Path) -> Path:
    """The engine-test protocols with the shipped locale texts."""
    target = tmp / "rules"
    shutil.copytree(FIXTURE_RULES, target)
    shutil.copytree(RULES_DIR / "locales", target / "locales")
    return target


@dataclass
class Chat:
    service: ConsultationService
    patient_id: str = "patient-1"
    replies: list[Reply] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)

    async def _send(self, inbound: Inbound) -> list[Reply]:
        actions: list[Outbound] = await self.service.handle(inbound)
        replies = [a for a in actions if isinstance(a, Reply)]
        self.escalations += [a for a in actions if isinstance(a, Escalation)]
        self.replies += replies
        return replies

    async def say(self, text: str) -> list[Reply]:
        return await self._send(Inbound(patient_id=self.patient_id, kind="text", text=text))

    async def tap(self, data: str) -> list[Reply]:
        return await self._send(Inbound(patient_id=self.patient_id, kind="button", data=data))

    async def command(self, name: str) -> list[Reply]:
        return await self._send(Inbound(patient_id=self.patient_id, kind="command", command=name))  # type: ignore[arg-type]

    async def agree_and_introduce(self, *, age: str, sex: str) -> None:
        """Consent, then the intake answers for an adult asking about themselves."""
        await self.tap("consent:yes")
        await self.tap("who:self")
        await self.say(age)
        await self.tap(f"sex:{sex}")

    @property
    def last(self) -> Reply:
        return self.replies[-1]

    def asked(self) -> list[str]:
        return [r.expect.question_id for r in self.replies if r.expect.question_id]
