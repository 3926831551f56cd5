"""Start-up wiring: rules, storage and the consultation service, built from settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.config import Settings
from dialog.phrasing import Phraser
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.store import Store
from storage.embedded import EmbeddedRedis
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard

log = logging.getLogger(__name__)

REDIS_POOL_WAIT = 5.0  # seconds a command may wait for a free connection of the pool


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
    # One immediate retry on a fresh connection: after Redis restarts, a pooled connection is dead
    # and its first command fails; with Redis down the retry fails at once too (no added wait).
    # A blocking pool: past `redis_max_connections` commands wait for a free connection (at most
    # REDIS_POOL_WAIT s) instead of failing as if Redis were down, as redis-py's default pool of 100
    # does under load (benchmarks/load.py: with it, turns were lost and replies duplicated).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=REDIS_POOL_WAIT,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    redis = Redis.from_pool(pool)
    try:
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.close()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    async with open_redis(settings) as redis:
        yield redis_store(settings, redis)


DAY = 86400


def redis_store(settings: Settings, redis: Redis, *, prefix: str = "wz:") -> RedisStore:
    """The store with the configured retention periods."""
    return RedisStore(
        redis,
        prefix=prefix,
        retention_seconds=settings.retention_days * DAY,
        escalations_retention_seconds=settings.retention_escalations_days * DAY,
    )


def team_board(settings: Settings, redis: Redis, *, prefix: str = "wz:") -> TeamBoard:
    """The doctor team's board with the configured retention periods."""
    return TeamBoard(
        redis,
        prefix=prefix,
        retention_seconds=settings.retention_days * DAY,
        audit_retention_seconds=settings.retention_audit_days * DAY,
    )


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
