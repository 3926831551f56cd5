"""The history of the rules in Redis: every version that went live or was refused, the files of
each version that went live (so an operator can roll back to it), and the status now.

Keys (prefix as the store's):
  {p}rules:history            list of RulesEvent JSON, newest first (the last HISTORY_KEPT)
  {p}rules:files:{version}    the rules files of a version that went live (JSON: path -> text)
  {p}rules:status             RulesStatus JSON
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from dialog.rules_events import RulesEvent, RulesStatus

HISTORY_KEPT = 500


class RulesHistory:
    def __init__(self, redis: Redis, *, prefix: str = "wz:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def record(
        self, event: RulesEvent, *, files: dict[str, str] | None = None, status: RulesStatus | None = None
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self._key("rules", "history"), event.model_dump_json())
            pipe.ltrim(self._key("rules", "history"), 0, HISTORY_KEPT - 1)
            if files is not None:
                pipe.set(self._key("rules", "files", event.version), json.dumps(files, ensure_ascii=False))
            if status is not None:
                pipe.set(self._key("rules", "status"), status.model_dump_json())
            await pipe.execute()

    async def events(self, limit: int = 50) -> list[RulesEvent]:
        raw = await self.redis.lrange(self._key("rules", "history"), 0, limit - 1)
        return [RulesEvent.model_validate_json(item) for item in raw]

    async def files(self, version: str) -> dict[str, str] | None:
        raw = await self.redis.get(self._key("rules", "files", version))
        if raw is None:
            return None
        files: dict[str, str] = json.loads(raw)
        return files

    async def status(self) -> RulesStatus | None:
        raw = await self.redis.get(self._key("rules", "status"))
        return RulesStatus.model_validate_json(raw) if raw else None
