"""The child-process backend: a GGUF model run by llama-cpp-python in a process of its own.

llama-cpp-python's token loop and sampling are Python code that holds the GIL between calls into
llama.cpp; run in the bot's own process (even on a worker thread) they slow every other coroutine,
the emergency path included. `ProcessLlamaBackend` starts one child interpreter that loads the
model once (and warms it up) by hosting a `LlamaBackend`, and serves generations one at a time.

Parent and child exchange one JSON line per message (pydantic models below) over the child's
stdin and stdout; the child moves its own stdout to stderr first, so nothing llama.cpp prints can
reach the channel. In the parent a reader thread waits on the pipe and hands each reply to the
event loop of the request it answers (`call_soon_threadsafe`): nothing blocks the loop, and a
`complete` costs the parent nothing while tokens are generated. Cancelling the awaiting task (or
closing a stream) sends `cancel`; the child stops that generation at its next token, or skips it
when it has not started.

When the child dies, the requests in flight raise `BackendUnavailableError`, new ones too until a
fresh child (started in the background, with backoff) has loaded the model; the queue meanwhile
gives patients the template text. `aclose` ends the child and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from model.backend import ChatMessage, GenerationOptions, JsonSchema
from model.errors import BackendError, BackendUnavailableError, ModelConfigError, ModelError
from model.llama import LlamaBackend, extra_buffers_work

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_CHILD_MAIN = "import sys; sys.path.insert(0, sys.argv[1]); from model.llama_process import serve; serve()"
_MAX_BACKOFF_S = 60.0

# ---- the messages on the pipe -------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadModel(_Message):
    """Parent -> child, first line: what to load and how."""

    kind: Literal["load"] = "load"
    model_path: str
    model_id: str
    n_threads: int | None
    n_ctx: int
    n_gpu_layers: int
    n_batch: int
    chat_format: str | None
    warm_up: bool
    verbose: bool
    extra_buffers: bool


class Generate(_Message):
    """Parent -> child: one generation. `stream` asks for its chunks as they are produced."""

    kind: Literal["generate"] = "generate"
    id: int
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions
    json_schema: JsonSchema | None = None
    stream: bool = False


class Cancel(_Message):
    """Parent -> child: stop generation `id` at its next token (or skip it, not started yet)."""

    kind: Literal["cancel"] = "cancel"
    id: int


class Ready(_Message):
    """Child -> parent: the model is loaded and warmed up."""

    kind: Literal["ready"] = "ready"
    pid: int


class LoadFailed(_Message):
    """Child -> parent: the model cannot be loaded; the child exits."""

    kind: Literal["load_failed"] = "load_failed"
    reason: str


class Chunk(_Message):
    kind: Literal["chunk"] = "chunk"
    id: int
    text: str


class Done(_Message):
    """The generation ended; `text` is the whole reply (empty for a stream, which had it in chunks)."""

    kind: Literal["done"] = "done"
    id: int
    text: str


class Failed(_Message):
    """The generation failed. `unavailable`: the model process is gone (made up by the parent)."""

    kind: Literal["failed"] = "failed"
    id: int
    reason: str
    unavailable: bool = False


ToChild = Annotated[Generate | Cancel, Field(discriminator="kind")]
FromChild = Annotated[Ready | LoadFailed | Chunk | Done | Failed, Field(discriminator="kind")]
Reply = Chunk | Done | Failed
_TO_CHILD: TypeAdapter[Generate | Cancel] = TypeAdapter(ToChild)
_FROM_CHILD: TypeAdapter[Ready | LoadFailed | Chunk | Done | Failed] = TypeAdapter(FromChild)


def _line(message: _Message) -> bytes:
    return message.model_dump_json().encode() + b"\n"


# ---- the parent side ----------------------------------------------------------------------


class _Child:
    """One model process, the thread that reads its replies, and the requests it owes a reply."""

    def __init__(self, load: LoadModel, on_exit: Callable[[_Child], None]) -> None:
        self.load = load
        self._on_exit = on_exit
        try:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, _PACKAGE_ROOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            raise ModelConfigError(f"cannot start a process for model {load.model_id}: {exc}") from exc
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self._stdin: IO[bytes] = self.process.stdin
        self._stdout: IO[bytes] = self.process.stdout
        self.pid = self.process.pid
        self.ready = threading.Event()
        self.settled = threading.Event()  # ready, or gone
        self.load_error: str | None = None
        self.stopping = False
        self.gone = False  # the reader saw the process exit: no request is taken any more
        self._write_lock = threading.Lock()
        self._pending: dict[int, Callable[[Reply], None]] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, name=f"model-process-{self.pid}", daemon=True)
        self._reader.start()
        with contextlib.suppress(OSError):  # a child dead already: the reader sees it exit
            self._write(_line(load))

    @property
    def alive(self) -> bool:
        return self.ready.is_set() and not self.stopping and self.process.returncode is None

    def wait_ready(self, timeout: float) -> None:
        """Block until the model is loaded; raises `ModelConfigError` (and stops the child) if not."""
        if not self.settled.wait(timeout):
            self.stop(grace=0)
            raise ModelConfigError(f"model {self.load.model_id} did not load within {timeout:.0f} s")
        if not self.ready.is_set():
            self.stop(grace=0)
            reason = self.load_error or f"the model process exited with code {self.process.returncode}"
            raise ModelConfigError(f"cannot load model {self.load.model_path}: {reason}")

    def send(self, build: Callable[[int], Generate], deliver: Callable[[Reply], None]) -> int:
        """Register `deliver` for the replies and write the request; returns its id."""
        with self._write_lock:
            request_id = next(self._ids)  # ids reach the child in increasing order
            with self._pending_lock:
                if self.gone:
                    raise BackendUnavailableError(f"{self.load.model_id}: the model process is gone")
                self._pending[request_id] = deliver
            try:
                self._stdin.write(_line(build(request_id)))
                self._stdin.flush()
            except (OSError, ValueError) as exc:
                with self._pending_lock:
                    self._pending.pop(request_id, None)
                raise BackendUnavailableError(f"{self.load.model_id}: the model process is gone") from exc
        return request_id

    def forget(self, request_id: int, *, cancel: bool) -> None:
        """Stop delivering replies to `request_id`; with `cancel`, tell the child to stop it."""
        with self._pending_lock:
            self._pending.pop(request_id, None)
        if cancel:
            with contextlib.suppress(OSError, ValueError):  # the child is gone: nothing to stop
                self._write(_line(Cancel(id=request_id)))

    def stop(self, grace: float = 5.0) -> None:
        """End the child: its stdin closes (it stops the running generation and exits), then
        SIGTERM after `grace` seconds, then SIGKILL; it is reaped either way."""
        self.stopping = True
        with self._write_lock, contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._stdin.write(data)
            self._stdin.flush()

    def _read(self) -> None:
        for line in self._stdout:
            try:
                message = _FROM_CHILD.validate_json(line)
            except ValidationError:
                log.warning("model process %d sent an unreadable line (%d bytes)", self.pid, len(line))
                continue
            if isinstance(message, Ready):
                self.ready.set()
                self.settled.set()
            elif isinstance(message, LoadFailed):
                self.load_error = message.reason
            else:
                with self._pending_lock:
                    deliver = self._pending.get(message.id)
                    if deliver is not None and not isinstance(message, Chunk):
                        del self._pending[message.id]
                if deliver is not None:
                    deliver(message)
        code = self.process.wait()
        self.settled.set()
        with self._pending_lock:
            self.gone = True
            orphans, self._pending = self._pending, {}
        reason = (
            "the backend is closed"
            if self.stopping
            else f"the model process exited with code {code} during the generation"
        )
        for request_id, deliver in orphans.items():
            deliver(Failed(id=request_id, reason=reason, unavailable=True))
        self._on_exit(self)


class ProcessLlamaBackend:
    """A GGUF model run by llama-cpp-python in a child process; the same settings as `LlamaBackend`.

    Construction starts the child and blocks until the model is loaded and warmed up (from async
    code call it through `asyncio.to_thread`); `start_timeout` bounds that. With `restart` a child
    that dies is replaced in the background (1 s, 2 s, ... up to a minute apart while loading fails).
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
        start_timeout: float = 600.0,
        restart: bool = True,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelConfigError(f"model file not found: {path}")
        self.id = model_id or path.stem
        self.languages = frozenset(languages)
        self.path = path
        self.restart = restart
        self.start_timeout = start_timeout
        self._load = LoadModel(
            model_path=str(path),
            model_id=self.id,
            n_threads=n_threads,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_batch=n_batch,
            chat_format=chat_format,
            warm_up=warm_up,
            verbose=verbose,
            # decided once here (it may probe the CPU), not again by every child
            extra_buffers=extra_buffers_work() if extra_buffers is None else extra_buffers,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._up = threading.Event()
        self._starting: _Child | None = None
        self._restarter: threading.Thread | None = None
        self._child: _Child | None = None
        child = _Child(self._load, self._exited)
        child.wait_ready(start_timeout)
        self._child = child
        self._up.set()
        log.info("model %s loaded in process %d (n_ctx=%d)", self.id, child.pid, n_ctx)

    @property
    def pid(self) -> int | None:
        """The model process's id while one is serving, else None."""
        child = self._child
        return child.pid if child is not None and child.alive else None

    async def wait_until_ready(self, seconds: float) -> bool:
        """Wait (without blocking the loop) until a model process serves; False after `seconds`."""
        return await asyncio.to_thread(self._up.wait, seconds) and not self._closed

    # ---- the contract ----------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def settle(reply: Reply) -> None:  # on the loop
            if future.done() or isinstance(reply, Chunk):
                return
            if isinstance(reply, Done):
                future.set_result(reply.text)
            else:
                future.set_exception(_error(self.id, reply))

        child, request_id = self._send(messages, options, json_schema, False, _on_loop(loop, settle))
        try:
            return await future
        finally:
            child.forget(request_id, cancel=not future.done() or future.cancelled())

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None = None,
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Reply] = asyncio.Queue()
        child, request_id = self._send(messages, options, json_schema, True, _on_loop(loop, inbox.put_nowait))
        finished = False
        try:
            while True:
                reply = await inbox.get()
                if isinstance(reply, Chunk):
                    yield reply.text
                    continue
                finished = True
                if isinstance(reply, Failed):
                    raise _error(self.id, reply)
                return
        finally:
            child.forget(request_id, cancel=not finished)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Synchronous `aclose`: stops the model process (and a restart under way) and reaps it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            children = [c for c in (self._child, self._starting) if c is not None]
            self._child = None
            restarter = self._restarter
        for child in children:
            child.stop()
        if restarter is not None:
            restarter.join(timeout=10)
        log.info("model %s closed", self.id)

    # ---- internals -------------------------------------------------------------------

    def _send(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        json_schema: JsonSchema | None,
        stream: bool,
        deliver: Callable[[Reply], None],
    ) -> tuple[_Child, int]:
        with self._lock:
            if self._closed:
                raise BackendError(f"backend {self.id} is closed")
            child = self._child
        if child is None or not child.alive:
            raise BackendUnavailableError(f"{self.id}: the model process is restarting")

        def build(request_id: int) -> Generate:
            return Generate(
                id=request_id,
                messages=tuple(messages),
                options=options,
                json_schema=json_schema,
                stream=stream,
            )

        return child, child.send(build, deliver)

    def _exited(self, child: _Child) -> None:
        """Called on the reader thread of a child that has exited (and been reaped)."""
        with self._lock:
            if child is not self._child:
                return  # stopped by `close`, or a child that never became the serving one
            self._child = None
            self._up.clear()
            if self._closed:
                return
            log.warning(
                "model process %d of %s exited with code %s%s",
                child.pid,
                self.id,
                child.process.returncode,
                "; starting a new one" if self.restart else "",
            )
            if self.restart:
                self._restarter = threading.Thread(
                    target=self._restart_loop, name=f"model-restart-{self.id}", daemon=True
                )
                self._restarter.start()

    def _restart_loop(self) -> None:
        delay = 1.0
        while not self._closing.wait(delay):
            try:
                with self._lock:
                    if self._closed:
                        return
                    child = self._starting = _Child(self._load, self._exited)
                child.wait_ready(self.start_timeout)
            except ModelConfigError as exc:
                if self._closing.is_set():
                    return
                delay = min(2 * delay, _MAX_BACKOFF_S)
                log.warning("model %s: restart failed (%s); next try in %.0f s", self.id, exc, delay)
                continue
            finally:
                with self._lock:
                    self._starting = None
            with self._lock:
                if not self._closed and child.alive:
                    self._child = child  # from now on its exit starts another restart
                    self._up.set()
                    log.info("model %s serves again from process %d", self.id, child.pid)
                    return
                closed = self._closed
            if closed:
                child.stop()
                return
            # it died between loading and taking over: try again


def _on_loop(loop: asyncio.AbstractEventLoop, handle: Callable[[Reply], None]) -> Callable[[Reply], None]:
    """`handle`, called from the reader thread, run on `loop` (dropped once that loop is closed)."""

    def deliver(reply: Reply) -> None:
        with contextlib.suppress(RuntimeError):  # the loop that asked is gone
            loop.call_soon_threadsafe(handle, reply)

    return deliver


def _error(model_id: str, reply: Failed) -> BackendError:
    if reply.unavailable:
        return BackendUnavailableError(f"{model_id}: {reply.reason}")
    return BackendError(reply.reason)


# ---- the child side -----------------------------------------------------------------------


class _Host:
    """The child's loop: generations one at a time on the main thread; a reader thread takes
    requests and cancellations off stdin meanwhile."""

    def __init__(self, backend: LlamaBackend, send: Callable[[_Message], None]) -> None:
        self.backend = backend
        self.send = send
        self.requests: queue.SimpleQueue[Generate | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = 0  # the highest id taken up so far
        self._current: tuple[int, threading.Event] | None = None
        self._skip: set[int] = set()  # cancelled before they started

    def listen(self, stdin: IO[bytes]) -> None:
        for line in stdin:
            try:
                message = _TO_CHILD.validate_json(line)
            except ValidationError:
                log.warning("unreadable request (%d bytes) ignored", len(line))
                continue
            if isinstance(message, Generate):
                self.requests.put(message)
            else:
                self._cancel(message.id)
        # the parent closed the pipe (or died): stop now
        with self._lock:
            if self._current is not None:
                self._current[1].set()
        self.requests.put(None)

    def run(self) -> None:
        while (request := self.requests.get()) is not None:
            with self._lock:
                self._started = request.id
                if request.id in self._skip:
                    self._skip.discard(request.id)
                    continue
                stop = threading.Event()
                self._current = (request.id, stop)
            try:
                self.send(self._generate(request, stop))
            finally:
                with self._lock:
                    self._current = None

    def _generate(self, request: Generate, stop: threading.Event) -> Done | Failed:
        def emit(text: str) -> None:
            self.send(Chunk(id=request.id, text=text))

        try:
            text = self.backend.generate(
                request.messages,
                request.options,
                request.json_schema,
                emit=emit if request.stream else None,
                cancelled=stop,
            )
        except BackendError as exc:
            return Failed(id=request.id, reason=str(exc))
        except Exception as exc:  # anything else still gets an answer; the process goes on
            log.exception("generation %d failed unexpectedly", request.id)
            return Failed(id=request.id, reason=f"{self.backend.id}: generation failed: {type(exc).__name__}")
        if stop.is_set():  # cancelled (the parent no longer listens) or shutting down: never "done"
            return Failed(id=request.id, reason="the backend is closed", unavailable=True)
        return Done(id=request.id, text="" if request.stream else text)

    def _cancel(self, request_id: int) -> None:
        with self._lock:
            if self._current is not None and self._current[0] == request_id:
                self._current[1].set()
            elif request_id > self._started:
                self._skip.add(request_id)
            # else: finished already, nothing to stop


def serve() -> None:
    """The child process's main: load the model the first stdin line names, then serve until
    stdin closes. Started by `ProcessLlamaBackend`; not for direct use."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the parent's to handle
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever llama.cpp or Python prints goes to stderr, never into the channel
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="model process %(process)d: %(levelname)s %(message)s")
    write_lock = threading.Lock()

    def send(message: _Message) -> None:
        with write_lock:
            channel.write(_line(message))
            channel.flush()

    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return
    load = LoadModel.model_validate_json(first)
    try:
        backend = LlamaBackend(
            load.model_path,
            model_id=load.model_id,
            n_threads=load.n_threads,
            n_ctx=load.n_ctx,
            n_gpu_layers=load.n_gpu_layers,
            n_batch=load.n_batch,
            chat_format=load.chat_format,
            warm_up=load.warm_up,
            verbose=load.verbose,
            extra_buffers=load.extra_buffers,
        )
    except ModelError as exc:
        send(LoadFailed(reason=str(exc)))
        return
    send(Ready(pid=os.getpid()))
    host = _Host(backend, send)
    threading.Thread(target=host.listen, args=(stdin,), name="requests", daemon=True).start()
    try:
        host.run()
    except OSError:
        pass  # the parent is gone
    finally:
        backend.close()
