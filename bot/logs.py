"""Logging set-up: plain text for a person at a terminal, or one JSON object per line for a log
collector (`WENZHEN_LOG_FORMAT=json`, the default of `wenzhen serve`).

A JSON line carries the time, level, logger, the message (which by the project's rule names ids,
reasons and counts, never what a patient wrote), where it was logged, and for an exception its
type and traceback. Extra fields given with `extra=` are added when they serialise.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# attributes every LogRecord has; anything else was given with `extra=`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "where": f"{record.module}:{record.lineno}",
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in line:
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    value = repr(value)
                line[key] = value
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Log `level` and above to stderr in `fmt`; replaces any handler set up before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
