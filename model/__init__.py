"""Model: language-model backends that phrase replies, read free text and summarise cases.

Owns: backends, prompts and the generation queue. May import: nothing of the project.
The triage level never comes from here.

    create_backend(spec)  -> Backend | None     `bundled`, `none`, a .gguf path or an http(s):// URL
    GenerationQueue(backend)                     bounded, prioritised, deadlines, cancel by key
    Assistant(queue)                             phrase / read_answer / sbar -> GenerationResult

Backends: `ProcessLlamaBackend` (llama-cpp-python in a child process, the default for GGUF
models), `LlamaBackend` (llama-cpp-python on a worker thread in process), `HttpBackend`
(OpenAI-compatible servers), `FakeBackend` (tests). llama_cpp is imported only when a model is
loaded.
"""

from model.assistant import Assistant
from model.backend import Backend, ChatMessage, GenerationOptions, JsonSchema, supports
from model.errors import (
    BackendError,
    BackendUnavailableError,
    ModelConfigError,
    ModelError,
    PromptError,
    QueueFullError,
)
from model.factory import create_backend
from model.fake import HANG, FakeBackend, FakeCall
from model.http import HttpBackend
from model.llama import LlamaBackend, bundled_model_path
from model.llama_process import ProcessLlamaBackend
from model.prompts import Prompt, PromptLibrary
from model.queue import CircuitBreaker, GenerationQueue, GenerationResult, Outcome, Priority
from model.tasks import (
    AnswerChoice,
    CaseSummary,
    PhrasePlan,
    QuestionAnswer,
    ReadAnswer,
    ReadRequest,
    phrase,
    read_answer,
    sbar,
)

__all__ = [
    "HANG",
    "AnswerChoice",
    "Assistant",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "CaseSummary",
    "ChatMessage",
    "CircuitBreaker",
    "FakeBackend",
    "FakeCall",
    "GenerationOptions",
    "GenerationQueue",
    "GenerationResult",
    "HttpBackend",
    "JsonSchema",
    "LlamaBackend",
    "ModelConfigError",
    "ModelError",
    "Outcome",
    "PhrasePlan",
    "Priority",
    "ProcessLlamaBackend",
    "Prompt",
    "PromptError",
    "PromptLibrary",
    "QuestionAnswer",
    "QueueFullError",
    "ReadAnswer",
    "ReadRequest",
    "bundled_model_path",
    "create_backend",
    "phrase",
    "read_answer",
    "sbar",
    "supports",
]
