"""What the consultation service calls: the three tasks through the generation queue.

Each method returns a `GenerationResult` within its deadline and never raises for model
trouble: `result.value_or(template)` is the text to send (after the safety guard). Without a
backend (`WENZHEN_MODEL=none`) every call answers `UNAVAILABLE` at once; for a language the
backend does not phrase well it answers `DECLINED` at once, without queueing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from model.backend import Backend
from model.errors import QueueFullError
from model.prompts import PromptLibrary
from model.queue import GenerationQueue, GenerationResult, Outcome, Priority
from model.tasks import CaseSummary, PhrasePlan, ReadAnswer, ReadRequest, phrase, read_answer, sbar

T = TypeVar("T")


class Assistant:
    def __init__(
        self,
        queue: GenerationQueue | None,
        *,
        prompts: PromptLibrary | None = None,
        phrase_deadline_s: float = 8.0,
        read_deadline_s: float = 6.0,
        sbar_deadline_s: float = 120.0,
        read_answers: bool = True,
    ) -> None:
        self.queue = queue
        self.prompts = prompts
        self.phrase_deadline_s = phrase_deadline_s
        self.read_deadline_s = read_deadline_s
        self.sbar_deadline_s = sbar_deadline_s
        self.read_answers = read_answers

    @property
    def backend(self) -> Backend | None:
        return self.queue.backend if self.queue is not None else None

    def speaks(self, lang: str) -> bool:
        """Whether phrasing in `lang` is worth asking for at all."""
        return self.queue is not None and lang in self.queue.backend.languages

    async def phrase(
        self, plan: PhrasePlan, *, key: str | None = None, deadline_s: float | None = None
    ) -> GenerationResult[str]:
        """The plan's text rephrased (patient priority); cancel with `cancel(key)`."""

        async def job(backend: Backend) -> str | None:
            return await phrase(backend, plan, prompts=self.prompts)

        return await self._run(job, plan.lang, Priority.PATIENT, key, deadline_s or self.phrase_deadline_s)

    async def read_answer(
        self, request: ReadRequest, *, key: str | None = None, deadline_s: float | None = None
    ) -> GenerationResult[ReadAnswer]:
        """The patient's free text read as a structured answer (patient priority).

        With `read_answers=False` (advised for the bundled 135M model, whose readings are valid
        but often wrong) this answers `DECLINED` at once.
        """
        if not self.read_answers:
            return GenerationResult(Outcome.DECLINED, error="reading free text is switched off")

        async def job(backend: Backend) -> ReadAnswer | None:
            return await read_answer(backend, request, prompts=self.prompts)

        return await self._run(job, request.lang, Priority.PATIENT, key, deadline_s or self.read_deadline_s)

    async def sbar(
        self, case: CaseSummary, *, key: str | None = None, deadline_s: float | None = None
    ) -> GenerationResult[str]:
        """An SBAR note for the doctor team (doctor priority: after every patient-facing job)."""

        async def job(backend: Backend) -> str | None:
            return await sbar(backend, case, prompts=self.prompts)

        return await self._run(job, case.lang, Priority.DOCTOR, key, deadline_s or self.sbar_deadline_s)

    def cancel(self, key: str) -> int:
        """Cancel the waiting and running jobs under `key` (e.g. the patient moved on)."""
        return self.queue.cancel(key) if self.queue is not None else 0

    async def _run(
        self,
        job: Callable[[Backend], Coroutine[Any, Any, T | None]],
        lang: str,
        priority: Priority,
        key: str | None,
        deadline_s: float,
    ) -> GenerationResult[T]:
        if self.queue is None:
            return GenerationResult(Outcome.UNAVAILABLE, error="no model configured")
        if lang not in self.queue.backend.languages:
            return GenerationResult(Outcome.DECLINED, error=f"{self.queue.backend.id} does not phrase {lang}")
        try:
            return await self.queue.submit(job, deadline_s=deadline_s, priority=priority, key=key)
        except QueueFullError as exc:
            return GenerationResult(Outcome.REJECTED, error=str(exc))
