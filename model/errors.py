"""The exceptions of `model`, all under one root so a caller can catch everything at once.

    ModelError
    ├── ModelConfigError          a backend cannot be set up: unknown spec, missing GGUF file
    ├── PromptError               a prompt file is missing or malformed (names the file)
    ├── BackendError              one generation failed (bad request, server error, bad reply)
    │   └── BackendUnavailableError   the backend cannot be reached (connect errors after retries)
    └── QueueFullError            back-pressure: the generation queue is full, nothing was queued

The queue turns backend errors, deadlines and cancellations into a `GenerationResult`; only
`QueueFullError` reaches the caller of `GenerationQueue.submit` as an exception (and
`Assistant` turns even that into a result).
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by `model`."""


class ModelConfigError(ModelError):
    """A backend cannot be created from the configuration; the message says which setting and why."""


class PromptError(ModelError):
    """A prompt file is missing or malformed; the message names the file."""


class BackendError(ModelError):
    """A generation failed."""


class BackendUnavailableError(BackendError):
    """The backend cannot be reached at all (connection refused, DNS, connect timeout)."""


class QueueFullError(ModelError):
    """The generation queue is full: the request was rejected at once, the caller uses its template."""
