"""The language model behind the engine's Phraser interface: backend, queue and assistant from
settings, adapted to `dialog.phrasing.Phraser`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.config import Settings
from dialog.phrasing import PhraseKind, ReadingRequest
from dialog.session import Case
from model import (
    AnswerChoice,
    Assistant,
    CaseSummary,
    GenerationQueue,
    PhrasePlan,
    QuestionAnswer,
    ReadRequest,
    create_backend,
)
from safety import Lang

log = logging.getLogger(__name__)


class AssistantPhraser:
    """`dialog.phrasing.Phraser` over `model.Assistant` (results below OK become None)."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def speaks(self, lang: Lang) -> bool:
        return self.assistant.speaks(lang)

    async def phrase(self, kind: PhraseKind, lang: Lang, template: str, *, key: str) -> str | None:
        result = await self.assistant.phrase(PhrasePlan(kind=kind, lang=lang, text=template), key=key)
        return result.value_or(None)  # type: ignore[arg-type]

    async def read_answer(self, request: ReadingRequest, *, key: str) -> str | float | None:
        read = ReadRequest(
            question=request.question,
            kind=request.kind,
            lang=request.lang,
            patient_text=request.patient_text[:2000],
            choices=tuple(AnswerChoice(id=cid, label=label) for cid, label in request.choices),
            unit=request.unit,
        )
        result = await self.assistant.read_answer(read, key=key)
        answer = result.value_or(None)  # type: ignore[arg-type]
        return answer.value if answer is not None else None

    def cancel(self, key: str) -> None:
        self.assistant.cancel(key)

    async def summarise(self, case: Case, lang: Lang) -> str | None:
        """An SBAR note on the case for the doctor team, or None. Built from the case's
        structured facts only (never its transcript), and never asked for a crisis case."""
        if case.crisis:
            return None
        summary = CaseSummary(
            lang=lang,
            level=case.level.value if case.level else "-",
            rule=case.rule or "",
            reason=case.disposition.reason if case.disposition else "",
            who=case.who,
            age=None if case.age is None else str(case.age),
            sex=case.sex,
            complaint=case.complaint or "",
            findings=tuple(case.present),
            answers=tuple(QuestionAnswer(question=q, answer=str(a)) for q, a in case.answers.items()),
            red_flags=tuple(case.red_flags),
        )
        result = await self.assistant.sbar(summary, key=f"sbar:{case.case_id}")
        return result.value_or(None)  # type: ignore[arg-type]


@asynccontextmanager
async def open_phraser(settings: Settings) -> AsyncIterator[AssistantPhraser | None]:
    """The configured model loaded once and warmed up (in its child process, or in this one when
    `model_process` is `thread`), or None for `none`."""
    threads = settings.model_threads or max(1, (os.cpu_count() or 2) - 1)
    backend = await asyncio.to_thread(
        create_backend,
        settings.model,
        model_name=settings.model_name,
        api_key=settings.model_api_key.get_secret_value() if settings.model_api_key else None,
        n_threads=threads,
        n_ctx=settings.model_context,
        n_gpu_layers=settings.model_gpu_layers,
        process=settings.model_process,
    )
    if backend is None:
        yield None
        return
    log.info("model %s ready", backend.id)
    queue = GenerationQueue(backend)
    try:
        # reading free text stays with the lexicon unless a capable model is configured: the
        # bundled 135M model answers validly but not reliably
        assistant = Assistant(
            queue, phrase_deadline_s=settings.model_phrase_seconds, read_answers=settings.model != "bundled"
        )
        yield AssistantPhraser(assistant)
    finally:
        await queue.aclose()
        await backend.aclose()  # ends the model's child process (the queue leaves the backend open)
