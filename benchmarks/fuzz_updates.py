"""Hostile and random Telegram updates through the dispatcher: 100,000 by default.

The generator and the checks are the test suite's (tests/telegram_fixtures/hostile.py; the
suite runs a seeded sample of a few thousand): random texts (unicode, huge, empty, control
characters, right-to-left, emoji, Chinese, format strings, alarming words), commands with junk,
media, real and malformed quick-reply taps, edited messages, group and channel posts, other
update types, updates with fields missing, and a few that are not valid updates at all. The real
consultation service runs on the engine-test protocols over a recording Bot API session.

A failure is an exception escaping the dispatcher, anything logged at ERROR, a private message
left unanswered or a tap not answered, anything sent to a group or channel, or a message that is
empty, over Telegram's limits, or carries a stack trace or a raw placeholder.

    .venv/bin/python benchmarks/fuzz_updates.py [--count 100000] [--seed 1] [--redis]

Last line: `fuzz_updates_failures: <count>`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialog.session import Session  # noqa: E402
from storage.memory import MemoryStore  # noqa: E402
from tests.telegram_fixtures.hostile import fuzz, summary  # noqa: E402


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="wenzhen-fuzz-"))
    if args.redis:
        from redis.asyncio import Redis

        from storage.embedded import EmbeddedRedis
        from storage.redis_store import RedisStore

        server = EmbeddedRedis(tmp / "redis")
        redis = Redis.from_url(server.url)
        try:
            report = await fuzz(args.count, args.seed, RedisStore(redis), tmp=tmp, redis=redis)
        finally:
            await redis.aclose()
            server.close()
        print(summary(report))
    else:
        store = MemoryStore()
        report = await fuzz(args.count, args.seed, store, tmp=tmp)
        print(summary(report))
        states = Counter(Session.model_validate_json(raw).state.value for raw in store.sessions.values())
        print(f"{len(store.sessions)} patients, states reached: {dict(sorted(states.items()))}")
        print(f"{len(store.cases)} cases, {len(store.escalations)} escalations")
    print(f"fuzz_updates_failures: {len(report.failures)}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", action="store_true", help="an embedded Redis instead of memory")
    sys.exit(asyncio.run(main(parser.parse_args())))
