"""Start-up wiring: rules, storage and the consultation service, built from settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from bot.config import Settings
from dialog.phrasing import Phraser
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.store import Store
from storage.embedded import EmbeddedRedis
from storage.redis_store import RedisStore

log = logging.getLogger(__name__)


def load_live_rules(settings: Settings) -> RuleSet:
    """The rules the bot runs on; raises DataFileError (file, line, problem) if they are bad."""
    return load_rules(settings.rules_dir)


@asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[Redis]:
    """REDIS_URL when set, else an embedded redis-server persisted under the data directory."""
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
    else:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        url = embedded.url
        log.info("embedded redis at %s", embedded.socket)
    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.close()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    async with open_redis(settings) as redis:
        yield RedisStore(redis, retention_seconds=settings.retention_days * 86400)


def build_service(
    settings: Settings, rules: RuleSet, store: Store, phraser: Phraser | None = None
) -> ConsultationService:
    return ConsultationService(
        rules,
        store,
        settings.region_config,
        default_lang=settings.language,
        retention_days=settings.retention_days,
        escalate_at=settings.escalate_at,
        phraser=phraser,
        phrase_kinds=settings.phrase_kinds,
    )
