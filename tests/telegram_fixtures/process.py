"""The real bot: `wenzhen serve` as a child process pointed at the fake Bot API server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.telegram_fixtures.fake_api import FakeBotAPI

WENZHEN = Path(sys.executable).parent / "wenzhen"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess:
    def __init__(
        self,
        api: FakeBotAPI,
        *,
        workdir: Path,
        redis_url: str | None,
        rules_dir: Path,
        webhook_port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.webhook_port = webhook_port
        self.log_path = workdir / "bot.log"
        self.metrics_port = free_port()  # /metrics, /healthz, /readyz in polling mode
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WENZHEN_", "TELEGRAM_", "REDIS_"))
        }
        self.env.update(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE=api.base_url,
            WENZHEN_DATA_DIR=str(workdir / "data"),
            WENZHEN_RULES_DIR=str(rules_dir),
            WENZHEN_CONFIG=str(workdir / "none.toml"),
            WENZHEN_MODEL="none",
            WENZHEN_LANGUAGE="en",
            WENZHEN_LOG_LEVEL="INFO",
            WENZHEN_TELEGRAM_REQUEST_TIMEOUT="3",
            WENZHEN_METRICS_PORT=str(self.metrics_port),
        )
        if redis_url is not None:  # else the bot starts its embedded Redis in the data dir
            self.env["REDIS_URL"] = redis_url
        if webhook_port is not None:
            self.env.update(
                WENZHEN_TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{webhook_port}/telegram/hook",
                WENZHEN_TELEGRAM_WEBHOOK_PORT=str(webhook_port),
            )
        self.env.update(env or {})
        self.command = [str(WENZHEN), "serve"]
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/telegram/hook"

    async def start(self, within: float = 30.0) -> None:
        """Start it and wait until it takes updates (polls, or has set its webhook and listens)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        polls_before = len(self.api.calls_of("getUpdates"))
        hooks_before = len(self.api.calls_of("setWebhook"))
        with self.log_path.open("a") as log:
            log.write(f"---- start {self.starts}\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.command, cwd=self.workdir, env=self.env, stdout=log, stderr=log
            )
        if self.webhook_port is None:
            ready = lambda: len(self.api.calls_of("getUpdates")) > polls_before  # noqa: E731
        else:
            ready = lambda: len(self.api.calls_of("setWebhook")) > hooks_before  # noqa: E731
        waiting = asyncio.ensure_future(self.api.wait_for(ready, within))
        exited = asyncio.ensure_future(self.process.wait())
        done, _ = await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            waiting.cancel()
            raise AssertionError(f"the bot exited with {self.process.returncode}:\n{self.log()}")
        exited.cancel()
        await waiting  # raises TimeoutError if it never got ready

    @property
    def probe_url(self) -> str:
        """Where /healthz, /readyz and /metrics are served: the webhook's port, else the metrics port."""
        return f"http://127.0.0.1:{self.webhook_port or self.metrics_port}"

    async def healthy(self) -> bool:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{self.webhook_port}/healthz") as response,
        ):
            return response.status == 200

    async def stop(self, within: float = 15.0) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"the bot did not stop on SIGTERM:\n{self.log()}") from None
        return int(self.process.returncode or 0)

    async def kill(self) -> None:
        """SIGKILL: the process dies wherever it is."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
