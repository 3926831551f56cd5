"""The backend contract: what every language-model backend offers the rest of wenzhen.

In the spirit of simonw/llm's model plugins the contract is tiny: an `id`, the `languages` the
model phrases well, `complete` (one reply as a string) and `stream` (the same reply in chunks),
both optionally constrained to a JSON schema, and `aclose`. Messages and options are pydantic
models because they cross the boundary to a thread or to an HTTP server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
JsonSchema = dict[str, Any]


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class GenerationOptions(BaseModel):
    """Sampling settings for one generation; backends map them onto their own parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=256, ge=1, le=32768)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None


@runtime_checkable
class Backend(Protocol):
    """A language model that turns chat messages into text."""

    id: str
    languages: frozenset[str]

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> str:
        """The whole reply. With `json_schema` the reply is constrained to JSON matching it.

        Raises `BackendError` (or `BackendUnavailableError`). Cancelling the awaiting task stops
        the generation as soon as the backend allows (between two tokens in process).
        """
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> AsyncIterator[str]:
        """The reply in chunks as they are generated; closing the iterator stops the generation."""
        ...

    async def aclose(self) -> None:
        """Release the model or the connection pool; the backend is unusable afterwards."""
        ...


def supports(backend: Backend | None, lang: str) -> bool:
    """Whether `backend` exists and phrases `lang` well (otherwise the caller uses its template)."""
    return backend is not None and lang in backend.languages
