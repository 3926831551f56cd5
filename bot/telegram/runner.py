"""Running the bot: long polling (default) or a webhook served by aiohttp.

`serve(settings, rules)` opens Redis (the embedded one unless REDIS_URL is set) and the language
model (WENZHEN_MODEL), builds the consultation service and the dispatcher, and runs until
SIGTERM or SIGINT; updates in hand are given `STOP_GRACE` seconds to finish.

TELEGRAM_API_BASE points the bot at a local Bot API server. In webhook mode Telegram's
`X-Telegram-Bot-Api-Secret-Token` header is checked on every request (aiogram's
SimpleRequestHandler); the secret is WENZHEN_TELEGRAM_WEBHOOK_SECRET, or one derived from the bot
token, so every process of a deployment agrees on it without setup. `/healthz`, `/readyz` and
`/metrics` (bot/telegram/health.py) are served on the webhook's port, or in polling mode on
WENZHEN_METRICS_HOST:WENZHEN_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from redis.asyncio import Redis

from bot.app import build_service, open_redis, redis_store, team_board
from bot.config import Settings
from bot.phrasing import open_phraser
from bot.rules_keeper import RulesKeeper
from bot.telegram.delivery import Delivery
from bot.telegram.dispatcher import TelegramOptions, create_dispatcher
from bot.telegram.health import Probes, add_routes, serve_probes
from bot.telegram.inflight import InFlight
from bot.telegram.team_desk import TeamDesk
from dialog.ruleset import RuleSet
from storage.rules_history import RulesHistory

log = logging.getLogger(__name__)

STOP_GRACE = 20.0
HEALTH_PATH = "/healthz"


def create_bot(settings: Settings) -> Bot:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    base = settings.telegram_api_base
    api = TelegramAPIServer.from_base(base) if base else PRODUCTION
    session = AiohttpSession(api=api, timeout=settings.telegram_request_timeout)
    return Bot(
        settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(link_preview_is_disabled=True),
    )


def webhook_secret(settings: Settings) -> str:
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    return hmac.new(token.encode(), b"wenzhen telegram webhook", hashlib.sha256).hexdigest()


def webhook_path(settings: Settings) -> str:
    if settings.telegram_webhook_path:
        return settings.telegram_webhook_path
    return urlsplit(settings.telegram_webhook_url or "").path or "/telegram"


async def serve(settings: Settings, rules: RuleSet) -> None:
    async with open_redis(settings) as redis, open_phraser(settings) as phraser:
        store = redis_store(settings, redis)
        service = build_service(settings, rules, store, phraser)
        bot = create_bot(settings)
        options = TelegramOptions.from_settings(settings)
        delivery = Delivery(options.delivery_policy())
        desk: TeamDesk | None = None
        if settings.teams:
            desk = TeamDesk(
                bot=bot,
                board=team_board(settings, redis),
                store=store,
                roster=settings.roster,
                service=service,
                delivery=delivery,
                summarise=phraser.summarise if phraser is not None and settings.team_sbar else None,
                realert_after=timedelta(minutes=settings.team_realert_minutes),
            )
            delivery.escalations = desk
        keeper = RulesKeeper(
            service,
            settings.rules_dir,
            RulesHistory(redis),
            cases=settings.rules_cases,
            notify=desk.announce if desk is not None else None,
        )
        await keeper.start()
        dispatcher = create_dispatcher(
            service, redis=redis, options=options, delivery=delivery, team_desk=desk, rules_keeper=keeper
        )
        probes = Probes.wire(dispatcher, redis=redis, service=service, delivery=delivery, phraser=phraser)
        async with _alongside(settings, redis, desk, keeper):
            if settings.telegram_webhook_url:
                await run_webhook(dispatcher, bot, settings, probes)
            else:
                async with serve_probes(settings.metrics_host, settings.metrics_port, probes):
                    await run_polling(dispatcher, bot)


@asynccontextmanager
async def _alongside(
    settings: Settings, redis: Redis, desk: TeamDesk | None, keeper: RulesKeeper
) -> AsyncIterator[None]:
    """What runs beside the bot: the team desk's workers, the rules watcher and, if configured,
    the dashboard."""
    stop = asyncio.Event()
    tasks = []
    if desk is not None:
        tasks = [asyncio.create_task(desk.work(stop)), asyncio.create_task(desk.realert(stop))]
    if settings.rules_watch:
        tasks.append(asyncio.create_task(keeper.watch(stop)))
    dashboard = None
    if settings.dashboard_with_serve:
        from dashboard import start_dashboard

        dashboard = await start_dashboard(settings, redis)
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if desk is not None:
            await desk.aclose()
        if dashboard is not None:
            await dashboard.cleanup()


async def run_polling(dispatcher: Dispatcher, bot: Bot) -> None:
    # getUpdates is refused while a webhook is set (a previous webhook deployment).
    await _with_retries("deleteWebhook", lambda: bot.delete_webhook(drop_pending_updates=False))
    try:
        await dispatcher.start_polling(
            bot,
            allowed_updates=dispatcher.resolve_used_update_types(),
            handle_signals=True,
            close_bot_session=False,
        )
    finally:
        await _finish(dispatcher)
        await bot.session.close()


async def run_webhook(
    dispatcher: Dispatcher, bot: Bot, settings: Settings, probes: Probes | None = None
) -> None:
    app = web.Application()
    secret = webhook_secret(settings)
    SimpleRequestHandler(dispatcher, bot, secret_token=secret).register(app, path=webhook_path(settings))
    if probes is not None:  # /healthz, /readyz and /metrics
        add_routes(app, probes)
    else:
        app.router.add_get(HEALTH_PATH, _health)
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.telegram_webhook_host, settings.telegram_webhook_port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        url = settings.telegram_webhook_url or ""
        await _with_retries(
            "setWebhook",
            lambda: bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=dispatcher.resolve_used_update_types(),
                drop_pending_updates=False,
            ),
        )
        log.info(
            "webhook: serving %s on %s:%d",
            webhook_path(settings),
            settings.telegram_webhook_host,
            settings.telegram_webhook_port,
        )
        await stop.wait()
    finally:
        log.info("stopping")
        await site.stop()
        await _finish(dispatcher)
        await runner.cleanup()  # emits the dispatcher's shutdown and closes the bot session


async def _finish(dispatcher: Dispatcher) -> None:
    inflight: InFlight = dispatcher["inflight"]
    if not await inflight.drain(STOP_GRACE):
        log.warning("stopping with %d update(s) still in hand", inflight.count)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _with_retries(what: str, call: Callable[[], Awaitable[object]], attempts: int = 8) -> None:
    """Start-up calls to the Bot API, retried with backoff while it is unreachable."""
    backoff = Backoff(BackoffConfig(min_delay=0.5, max_delay=10.0, factor=2.0, jitter=0.1))
    for attempt in range(1, attempts + 1):
        try:
            await call()
            return
        except TelegramUnauthorizedError:
            raise
        except TelegramAPIError as exc:
            if attempt == attempts:
                raise
            delay = max(0.1, next(backoff))
            log.warning("%s failed (%s); retrying in %.1fs", what, exc.message, delay)
            await asyncio.sleep(delay)
