"""The HTTP backend: any OpenAI-compatible chat-completions server, through httpx.

Works with llama.cpp's `llama-server`, `python -m llama_cpp.server`, vLLM, Ollama and hosted
OpenAI-compatible APIs. `base_url` is the API root (`http://host:8080/v1`; a bare
`http://host:8080` gets `/v1` appended). Without a model name the first one the server lists
under `/models` is used.

Connect errors, 429 and 5xx replies are retried with exponential backoff and jitter (a
`Retry-After` header is honoured up to `max_backoff`); a read timeout is not retried, since the
generation it would repeat is the expensive part and the queue's deadline bounds the wait anyway.

JSON-schema constrained output is sent as OpenAI's `response_format` `{"type": "json_schema"}`
(vLLM, llama-server, OpenAI). `llama_cpp.server` only knows `{"type": "json_object", "schema":
...}`; with `json_style="auto"` the backend switches to that form the first time a server
refuses the standard one, and keeps it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from model.backend import ChatMessage, GenerationOptions, JsonSchema
from model.errors import BackendError, BackendUnavailableError, ModelConfigError

log = logging.getLogger(__name__)

JsonStyle = Literal["auto", "json_schema", "json_object"]
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
_STYLE_REFUSED = frozenset({400, 422, 500})


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = None


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _Message
    finish_reason: str | None = None


class _Completion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    choices: list[_Choice]


class _Delta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = None


class _ChunkChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    delta: _Delta = _Delta()


class _Chunk(BaseModel):
    model_config = ConfigDict(extra="ignore")
    choices: list[_ChunkChoice] = []
    error: Any = None


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str


class _ModelList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: list[_ModelEntry]


class _StatusError(BackendError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server replied {status}: {detail}")
        self.status = status
        self.detail = detail


def api_root(base_url: str) -> str:
    """`base_url` with a trailing slash, `/v1` added when the URL has no path at all."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ModelConfigError(f"not an http(s) URL: {base_url!r}")
    path = url.path.rstrip("/")
    return str(url.copy_with(path=(path or "/v1") + "/"))


class HttpBackend:
    """An OpenAI-compatible chat-completions server."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        model_id: str | None = None,
        languages: Iterable[str] = ("en", "zh"),
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        json_style: JsonStyle = "auto",
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = api_root(base_url)
        self.model = model
        self.id = model_id or f"http:{model or httpx.URL(self.base_url).host}"
        self.languages = frozenset(languages)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.json_style: JsonStyle = json_style
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )
        self._model_known = model is not None

    # ---- the contract ----------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> str:
        await self._discover_model()
        async with self._send(lambda: self._body(messages, options, json_schema, stream=False)) as response:
            raw = await response.aread()
        try:
            completion = _Completion.model_validate_json(raw)
        except ValidationError as exc:
            raise BackendError(f"{self.id}: malformed completion: {_short(raw)}") from exc
        if not completion.choices:
            raise BackendError(f"{self.id}: the completion has no choices")
        return completion.choices[0].message.content or ""

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> AsyncIterator[str]:
        await self._discover_model()
        async with self._send(lambda: self._body(messages, options, json_schema, stream=True)) as response:
            try:
                async for data in _sse_data(response.aiter_lines()):
                    if data.strip() == "[DONE]":
                        return
                    try:
                        chunk = _Chunk.model_validate_json(data)
                    except ValidationError as exc:
                        raise BackendError(f"{self.id}: malformed stream chunk: {_short(data)}") from exc
                    if chunk.error is not None:
                        raise BackendError(f"{self.id}: server error in stream: {_short(str(chunk.error))}")
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            except httpx.HTTPError as exc:
                raise BackendError(f"{self.id}: stream broken: {exc!r}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_models(self) -> list[str]:
        """The model ids the server offers (GET /models)."""
        async with self._send(None) as response:
            raw = await response.aread()
        try:
            return [entry.id for entry in _ModelList.model_validate_json(raw).data]
        except ValidationError as exc:
            raise BackendError(f"{self.id}: malformed model list: {_short(raw)}") from exc

    # ---- requests --------------------------------------------------------------------

    async def _discover_model(self) -> None:
        if self._model_known:
            return
        self._model_known = True
        try:
            models = await self.list_models()
        except BackendUnavailableError:
            self._model_known = False
            raise
        except BackendError as exc:
            log.warning("%s: no model name given and the model list failed (%s); sending none", self.id, exc)
            return
        if models:
            self.model = models[0]
            log.info("%s: using model %s", self.id, self.model)

    def _body(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra_body,
            "messages": [message.model_dump() for message in messages],
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": stream,
        }
        if self.model:
            body["model"] = self.model
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        if json_schema is not None:
            if self.json_style == "json_object":
                body["response_format"] = {"type": "json_object", "schema": json_schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "reply", "schema": json_schema, "strict": True},
                }
        return body

    @asynccontextmanager
    async def _send(self, body: Callable[[], dict[str, Any]] | None) -> AsyncIterator[httpx.Response]:
        """POST chat/completions (GET models when `body` is None), retrying what is worth it;
        yields a 2xx response whose body is still to be read."""
        attempt = 0
        while True:
            payload = body() if body is not None else None
            if payload is None:
                request = self._client.build_request("GET", "models")
            else:
                request = self._client.build_request("POST", "chat/completions", json=payload)
            try:
                response = await self._client.send(request, stream=True)
            except _RETRY_ERRORS as exc:
                if attempt >= self.retries:
                    raise BackendUnavailableError(
                        f"{self.id}: cannot reach {self.base_url}: {exc!r}"
                    ) from exc
                await asyncio.sleep(self._delay(attempt, None))
                attempt += 1
                continue
            except httpx.TimeoutException as exc:
                raise BackendError(f"{self.id}: timed out: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise BackendError(f"{self.id}: request failed: {exc!r}") from exc
            if response.is_success:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            detail = _short(await response.aread())
            await response.aclose()
            if self._refused_schema_style(payload, response.status_code, detail):
                log.info("%s: server refuses response_format json_schema; using json_object", self.id)
                self.json_style = "json_object"
                continue
            if response.status_code in _RETRY_STATUS and attempt < self.retries:
                await asyncio.sleep(self._delay(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            raise _StatusError(response.status_code, detail)

    def _refused_schema_style(self, payload: dict[str, Any] | None, status: int, detail: str) -> bool:
        if self.json_style != "auto" or payload is None or status not in _STYLE_REFUSED:
            return False
        if payload.get("response_format", {}).get("type") != "json_schema":
            return False
        return "response_format" in detail or "json_schema" in detail

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (comments, ids and event names skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _short(raw: bytes | str, limit: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        text = str(parsed["error"].get("message", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
