"""A scripted backend for tests, shaped like simonw/llm's `MockModel`.

`enqueue([...])` lines up what the next calls return: a string is the reply, an exception is
raised; `HANG` makes the call wait until `release()` (or until the caller is cancelled) and then
take the step queued right after it. Every call is
recorded in `calls` with its messages, options and schema. With nothing queued the backend
returns `default`, or raises `BackendError` when there is no default.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from model.backend import ChatMessage, GenerationOptions, JsonSchema
from model.errors import BackendError


class _Hang:
    def __repr__(self) -> str:
        return "HANG"


HANG: Final = _Hang()
Script = str | BaseException | _Hang


@dataclass(frozen=True, slots=True)
class FakeCall:
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions
    json_schema: JsonSchema | None
    streamed: bool

    @property
    def prompt(self) -> str:
        """All message contents joined, for easy `in` assertions."""
        return "\n".join(message.content for message in self.messages)


class FakeBackend:
    def __init__(
        self,
        replies: Iterable[Script] = (),
        *,
        model_id: str = "fake",
        languages: Iterable[str] = ("en", "zh"),
        default: str | None = None,
        delay: float = 0.0,
        chunk_size: int = 4,
    ) -> None:
        self.id = model_id
        self.languages = frozenset(languages)
        self.default = default
        self.delay = delay
        self.chunk_size = chunk_size
        self.calls: list[FakeCall] = []
        self.active = 0
        self.max_active = 0
        self.cancelled = 0
        self.closed = False
        self._script: deque[Script] = deque(replies)
        self._released = asyncio.Event()

    def enqueue(self, replies: Iterable[Script]) -> None:
        self._script.extend(replies)

    def release(self) -> None:
        """Let every hanging call (present and future) go on to its next scripted step."""
        self._released.set()

    @property
    def prompts(self) -> list[str]:
        return [call.prompt for call in self.calls]

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> str:
        return await self._reply(messages, options, json_schema, streamed=False)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> AsyncIterator[str]:
        text = await self._reply(messages, options, json_schema, streamed=True)
        for start in range(0, len(text), self.chunk_size):
            yield text[start : start + self.chunk_size]

    async def aclose(self) -> None:
        self.closed = True

    async def _reply(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None,
        *,
        streamed: bool,
    ) -> str:
        if self.closed:
            raise BackendError("fake backend is closed")
        self.calls.append(FakeCall(tuple(messages), options, json_schema, streamed))
        step: Script | None = self._script.popleft() if self._script else None
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if isinstance(step, _Hang):
                # the step right after HANG belongs to this call, unless it is another HANG
                following = self._script[0] if self._script else None
                step = following if isinstance(following, str | BaseException) else None
                if step is not None:
                    self._script.popleft()
                await self._released.wait()
            if isinstance(step, BaseException):
                raise step
            if step is None:
                if self.default is None:
                    raise BackendError("fake backend: no reply queued")
                return self.default
            return step
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
