"""`create_backend`: what each WENZHEN_MODEL value gives, and the errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import (
    Backend,
    BackendError,
    ChatMessage,
    GenerationOptions,
    HttpBackend,
    LlamaBackend,
    ModelConfigError,
    ProcessLlamaBackend,
    bundled_model_path,
    create_backend,
    supports,
)


def test_none_means_templates_only() -> None:
    assert create_backend("none") is None
    assert create_backend(" NONE ") is None
    assert not supports(None, "en")


@pytest.mark.parametrize(("process", "kind"), [("child", ProcessLlamaBackend), ("thread", LlamaBackend)])
async def test_bundled_is_the_english_only_smollm2(process: str, kind: type[Backend]) -> None:
    backend = create_backend(n_ctx=512, warm_up=False, process=process)  # type: ignore[arg-type]
    assert isinstance(backend, kind)
    try:
        assert isinstance(backend, Backend)
        assert backend.id == "smollm2-135m-instruct"
        assert backend.languages == frozenset({"en"})
        assert supports(backend, "en")
        assert not supports(backend, "zh")
        assert backend.path == bundled_model_path()  # type: ignore[attr-defined]
        text = await backend.complete(
            [ChatMessage(role="user", content="Hi")], GenerationOptions(max_tokens=2)
        )
        assert isinstance(text, str)
    finally:
        await backend.aclose()
    with pytest.raises(BackendError, match="closed"):
        await backend.complete([ChatMessage(role="user", content="Hi")], GenerationOptions(max_tokens=2))


def test_a_gguf_path_loads_that_file_trusted_with_both_languages(tmp_path: Path) -> None:
    backend = create_backend(str(bundled_model_path()), model_name="local", n_ctx=512, warm_up=False)
    assert isinstance(backend, ProcessLlamaBackend)
    try:
        assert backend.id == "local"
        assert backend.languages == frozenset({"en", "zh"})
    finally:
        backend.close()
    threaded = create_backend(str(bundled_model_path()), n_ctx=512, warm_up=False, process="thread")
    assert isinstance(threaded, LlamaBackend)
    threaded.close()
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelConfigError, match=r"missing\.gguf.*no such model file"):
        create_backend(str(missing))


async def test_an_url_is_an_openai_compatible_server() -> None:
    backend = create_backend(
        "http://gpu-box:8080", model_name="baichuan-m2-32b", api_key="secret", languages=["zh", "en"]
    )
    assert isinstance(backend, HttpBackend)
    try:
        assert backend.base_url == "http://gpu-box:8080/v1/"
        assert backend.model == "baichuan-m2-32b"
        assert backend.id == "http:baichuan-m2-32b"
        assert backend.languages == frozenset({"en", "zh"})
        assert backend._client.headers["authorization"] == "Bearer secret"
    finally:
        await backend.aclose()


@pytest.mark.parametrize("spec", ["gpt-4", "model.bin", "", "bundle"])
def test_anything_else_is_refused_with_the_setting_named(spec: str) -> None:
    with pytest.raises(ModelConfigError, match=r"WENZHEN_MODEL=.*expected `bundled`, `none`"):
        create_backend(spec)


def test_an_unknown_process_choice_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ModelConfigError, match=r"WENZHEN_MODEL_PROCESS='fork'.*`child` or `thread`"):
        create_backend("bundled", process="fork")  # type: ignore[arg-type]
