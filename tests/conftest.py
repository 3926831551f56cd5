"""Shared fixtures: the live rules, a real Redis (REDIS_URL when set, else the embedded one),
and services built on them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from clinical import RULES_DIR
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from safety import REGIONS
from storage.embedded import EmbeddedRedis
from storage.memory import MemoryStore
from storage.redis_store import RedisStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(RULES_DIR)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    return f"wztest:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_store(redis: Redis, key_prefix: str) -> AsyncIterator[RedisStore]:
    yield RedisStore(redis, prefix=key_prefix)
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def service(rules: RuleSet) -> ConsultationService:
    return ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")
