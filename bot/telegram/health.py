"""Health, readiness and metrics over HTTP, for load balancers, orchestrators and Prometheus.

    GET /healthz   200 while the process runs (liveness)
    GET /readyz    200 when Redis answers PING, the rules are loaded and the model is not
                   circuit-broken; else 503. The body (JSON) names each check.
    GET /metrics   Prometheus text format (bot/metrics.py)

In webhook mode the routes join the webhook's aiohttp app; in polling mode `serve_probes` runs
them on a small site of their own (WENZHEN_METRICS_HOST, WENZHEN_METRICS_PORT; port 0: none).
`wire` builds the probes and connects the metrics to the dispatcher, the delivery and the
service.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiogram import Dispatcher
from aiohttp import web
from redis.asyncio import Redis

from bot.metrics import CONTENT_TYPE, CountingPhraser, Metrics, instrument
from bot.phrasing import AssistantPhraser
from bot.telegram.delivery import Delivery
from dialog.service import ConsultationService
from model.queue import GenerationQueue

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PING_TIMEOUT = 2.0


class Probes:
    def __init__(
        self,
        *,
        redis: Redis,
        service: ConsultationService,
        metrics: Metrics,
        queue: GenerationQueue | None = None,
    ) -> None:
        self.redis = redis
        self.service = service
        self.metrics = metrics
        self.queue = queue

    @classmethod
    def wire(
        cls,
        dispatcher: Dispatcher,
        *,
        redis: Redis,
        service: ConsultationService,
        delivery: Delivery,
        phraser: AssistantPhraser | None,
    ) -> Probes:
        """Metrics for this dispatcher, its delivery and its service; the probes that serve them."""
        metrics = Metrics()
        counting = None
        if service.phraser is not None:
            counting = CountingPhraser(service.phraser)
            service.phraser = counting
        queue = phraser.assistant.queue if phraser is not None else None
        metrics.watch(guard=service.guard, queue=queue, phraser=counting)
        delivery.metrics = metrics
        instrument(dispatcher, metrics)
        return cls(redis=redis, service=service, metrics=metrics, queue=queue)

    async def ready(self) -> dict[str, str]:
        """Each check and its result; every value is "ok" when ready."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.redis.ping(), PING_TIMEOUT)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable ({type(exc).__name__})"
        rules = self.service.rules
        checks["rules"] = "ok" if rules.protocols and rules.red_flags.flags else "not loaded"
        if self.queue is None:
            checks["model"] = "ok"  # none configured: the templates need none
        else:
            state = self.queue.breaker.state
            checks["model"] = "ok" if state != "open" else "circuit open"
        return checks

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await self.ready()
        ready = all(value == "ok" for value in checks.values())
        body = json.dumps({"ready": ready, "checks": checks})
        return web.Response(text=body, status=200 if ready else 503, content_type="application/json")

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, probes: Probes) -> None:
    app.router.add_get(HEALTH_PATH, probes.healthz)
    app.router.add_get(READY_PATH, probes.readyz)
    app.router.add_get(METRICS_PATH, probes.metrics_page)


@asynccontextmanager
async def serve_probes(host: str, port: int, probes: Probes) -> AsyncIterator[web.AppRunner | None]:
    """The probes on their own site while the body runs (polling mode). A port that cannot be
    bound is logged and the bot runs on without them: patients come before dashboards."""
    if port == 0:
        yield None
        return
    app = web.Application()
    add_routes(app, probes)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.warning("metrics and health endpoints not served on %s:%d: %s", host, port, exc.strerror)
        await runner.cleanup()
        yield None
        return
    log.info("metrics and health endpoints on http://%s:%d", host, port)
    try:
        yield runner
    finally:
        await runner.cleanup()
