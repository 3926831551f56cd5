"""The OpenAI-compatible HTTP backend: against a real `python -m llama_cpp.server` serving the
bundled model (started once for the module, stopped at the end), and against httpx's
MockTransport for retries, errors and the wire format."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from model import (
    BackendError,
    BackendUnavailableError,
    ChatMessage,
    GenerationOptions,
    HttpBackend,
    ModelConfigError,
    ReadRequest,
    bundled_model_path,
    read_answer,
)
from model.http import api_root
from model.llama import python_module_command

API_KEY = "test-key"
GREETING = [
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Say hello to a patient in one short sentence."),
]
GREEDY = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
ODD_SCHEMA = {
    "type": "object",
    "properties": {"pick": {"type": "string", "enum": ["zebra-7", "quokka-3"]}},
    "required": ["pick"],
    "additionalProperties": False,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama_cpp.server with the bundled model; yields its API root."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        *python_module_command("llama_cpp.server"),  # without llama.cpp's CPU buffers where they crash
        "--model",
        str(bundled_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "1024",
        "--api_key",
        API_KEY,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {API_KEY}"}).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"llama_cpp.server not ready after 60 s:\n{log.read_text()[-2000:]}")


# ---- against the real server -----------------------------------------------------------


async def test_completion_streaming_and_model_discovery_on_a_real_server(server: str) -> None:
    backend = HttpBackend(server, api_key=API_KEY)
    try:
        text = await backend.complete(GREETING, GREEDY)
        assert text.strip()
        assert backend.model is not None
        assert backend.model.endswith(".gguf")
        chunks = [chunk async for chunk in backend.stream(GREETING, GREEDY)]
        assert len(chunks) > 1
        assert "".join(chunks) == text
    finally:
        await backend.aclose()


async def test_json_schema_on_a_real_server_falls_back_to_its_dialect(server: str) -> None:
    backend = HttpBackend(server, api_key=API_KEY, model="bundled")
    try:
        assert backend.json_style == "auto"
        messages = [ChatMessage(role="user", content="What is the capital of France?")]
        reply = json.loads(await backend.complete(messages, GenerationOptions(max_tokens=24), ODD_SCHEMA))
        assert reply["pick"] in ("zebra-7", "quokka-3")
        assert str(backend.json_style) == "json_object"  # llama_cpp.server refused "json_schema"
        request = ReadRequest(question="Do you have a fever?", kind="yes_no", lang="en", patient_text="nope")
        answer = await read_answer(backend, request)
        assert answer is not None
        assert answer.value in ("yes", "no", "unsure")
    finally:
        await backend.aclose()


async def test_a_wrong_key_is_refused_without_retries(server: str) -> None:
    backend = HttpBackend(server, api_key="wrong", model="bundled", backoff=5)
    try:
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="401"):
            await backend.complete(GREETING, GREEDY)
        assert time.monotonic() - t0 < 2
    finally:
        await backend.aclose()


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    backend = HttpBackend(f"http://127.0.0.1:{free_port()}/v1", model="m", retries=2, backoff=0.01)
    try:
        with pytest.raises(BackendUnavailableError, match="cannot reach"):
            await backend.complete(GREETING, GREEDY)
    finally:
        await backend.aclose()


# ---- against MockTransport -------------------------------------------------------------


def completion(text: str) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    )


def mock(
    handler: Callable[[httpx.Request], httpx.Response], **settings: object
) -> tuple[HttpBackend, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    options: dict[str, object] = {"model": "m", "backoff": 0.001, "max_backoff": 0.01, **settings}
    backend = HttpBackend("http://model.test/v1", transport=httpx.MockTransport(record), **options)  # type: ignore[arg-type]
    return backend, seen


async def test_the_request_is_an_openai_chat_completion() -> None:
    backend, seen = mock(lambda _: completion('{"pick": "zebra-7"}'), api_key="k")
    options = GenerationOptions(max_tokens=9, temperature=0.1, stop=("\n\n",), seed=3)
    assert await backend.complete(GREETING, options, ODD_SCHEMA) == '{"pick": "zebra-7"}'
    request = seen[0]
    assert request.method == "POST"
    assert request.url == "http://model.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    body = json.loads(request.content)
    assert body["model"] == "m"
    assert body["messages"][1] == GREETING[1].model_dump()
    assert (body["max_tokens"], body["temperature"], body["stop"], body["seed"]) == (9, 0.1, ["\n\n"], 3)
    assert body["stream"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": ODD_SCHEMA, "strict": True},
    }


async def test_5xx_and_429_are_retried_with_backoff() -> None:
    replies = iter(
        [
            httpx.Response(503, text="loading"),
            httpx.Response(429, headers={"Retry-After": "0"}, text="slow down"),
            completion("fine"),
        ]
    )
    backend, seen = mock(lambda _: next(replies))
    assert await backend.complete(GREETING, GREEDY) == "fine"
    assert len(seen) == 3


async def test_retries_give_up_with_the_servers_message() -> None:
    backend, seen = mock(lambda _: httpx.Response(500, json={"error": {"message": "CUDA out of memory"}}))
    with pytest.raises(BackendError, match="500: CUDA out of memory"):
        await backend.complete(GREETING, GREEDY)
    assert len(seen) == 4  # the first try and 3 retries


async def test_client_errors_and_read_timeouts_are_not_retried() -> None:
    backend, seen = mock(lambda _: httpx.Response(400, json={"error": {"message": "bad temperature"}}))
    with pytest.raises(BackendError, match="400: bad temperature"):
        await backend.complete(GREETING, GREEDY)
    assert len(seen) == 1

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    backend, seen = mock(read_timeout)
    with pytest.raises(BackendError, match="timed out") as caught:
        await backend.complete(GREETING, GREEDY)
    assert not isinstance(caught.value, BackendUnavailableError)
    assert len(seen) == 1


async def test_connect_errors_are_retried_then_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    backend, seen = mock(refuse, retries=2)
    with pytest.raises(BackendUnavailableError):
        await backend.complete(GREETING, GREEDY)
    assert len(seen) == 3


@pytest.mark.parametrize("body", [b"not json", b'{"choices": "nope"}', b'{"choices": []}'])
async def test_malformed_replies_are_errors(body: bytes) -> None:
    backend, _ = mock(lambda _: httpx.Response(200, content=body))
    with pytest.raises(BackendError, match=r"malformed|no choices"):
        await backend.complete(GREETING, GREEDY)


def sse(*events: str) -> httpx.Response:
    return httpx.Response(
        200,
        content="".join(f"{event}\n\n" for event in events).encode(),
        headers={"content-type": "text/event-stream"},
    )


def delta(text: str) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


async def test_streaming_parses_server_sent_events() -> None:
    role = "data: " + json.dumps({"choices": [{"delta": {"role": "assistant"}}]})
    backend, seen = mock(
        lambda _: sse(role, ": ping", delta("Hel"), "event: x\n" + delta("lo"), "data: [DONE]")
    )
    assert [chunk async for chunk in backend.stream(GREETING, GREEDY)] == ["Hel", "lo"]
    assert json.loads(seen[0].content)["stream"] is True


async def test_errors_inside_a_stream_are_raised() -> None:
    backend, _ = mock(lambda _: sse(delta("Hel"), 'data: {"error": {"message": "context full"}}'))
    with pytest.raises(BackendError, match="context full"):
        _ = [chunk async for chunk in backend.stream(GREETING, GREEDY)]


async def test_the_json_style_fallback_happens_only_for_a_refused_response_format() -> None:
    def refuse_schema_style(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["response_format"]["type"] == "json_schema":
            return httpx.Response(500, json={"error": {"message": "response_format: literal_error"}})
        return completion("{}")

    backend, seen = mock(refuse_schema_style)
    assert await backend.complete(GREETING, GREEDY, ODD_SCHEMA) == "{}"
    assert len(seen) == 2
    assert backend.json_style == "json_object"
    assert json.loads(seen[1].content)["response_format"] == {"type": "json_object", "schema": ODD_SCHEMA}

    strict, seen = mock(refuse_schema_style, json_style="json_schema", retries=0)
    with pytest.raises(BackendError, match="500"):
        await strict.complete(GREETING, GREEDY, ODD_SCHEMA)
    assert len(seen) == 1


async def test_without_a_model_name_the_first_listed_model_is_used() -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(
                200, json={"object": "list", "data": [{"id": "baichuan-m2"}, {"id": "other"}]}
            )
        return completion("hi")

    backend, seen = mock(server, model=None)
    assert await backend.complete(GREETING, GREEDY) == "hi"
    assert await backend.complete(GREETING, GREEDY) == "hi"
    assert [r.url.path for r in seen] == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    assert json.loads(seen[1].content)["model"] == "baichuan-m2"


def test_api_roots() -> None:
    assert api_root("http://gpu:8080") == "http://gpu:8080/v1/"
    assert api_root("https://gpu.example/v1/") == "https://gpu.example/v1/"
    assert api_root("http://gpu:8000/openai/v1") == "http://gpu:8000/openai/v1/"
    with pytest.raises(ModelConfigError):
        api_root("ftp://gpu")
    with pytest.raises(ModelConfigError):
        api_root("http://")
