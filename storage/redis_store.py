"""Sessions, cases and escalations in Redis.

Keys (prefix configurable, default `wz:`):
  {p}session:{patient}     the session JSON (carries the current case)
  {p}case:{case_id}        a case record JSON
  {p}patient:{patient}     set of the patient's case ids (for /forget)
  {p}escalations           stream of escalations for the doctor team

Retention: sessions, cases and the case index expire `retention_seconds` after their last save;
escalation entries older than `escalations_retention_seconds` are trimmed from the stream on
each new one (stream ids are times). `forget` removes everything of a patient at once, the
doctor team's tickets and audit trails included (storage/team_board.py).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dialog.events import Escalation
from dialog.session import Case, Session
from dialog.store import StoreUnavailableError
from storage.team_board import TeamBoard

_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisStore:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "wz:",
        retention_seconds: int | None = None,
        escalations_retention_seconds: int | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.escalations_retention_seconds = escalations_retention_seconds

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def load(self, patient_id: str) -> Session | None:
        try:
            raw = await self.redis.get(self._key("session", patient_id))
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc
        return Session.model_validate_json(raw) if raw else None

    async def save(self, session: Session) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    self._key("session", session.patient_id),
                    session.model_dump_json(),
                    ex=self.retention_seconds,
                )
                if session.case is not None:
                    self._queue_case(pipe, session.case)
                await pipe.execute()
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc

    async def save_case(self, case: Case) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                self._queue_case(pipe, case)
                await pipe.execute()
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def _queue_case(self, pipe: Pipeline, case: Case) -> None:
        pipe.set(
            self._key("case", case.case_id),
            case.model_dump_json(),
            ex=self.retention_seconds,
        )
        pipe.sadd(self._key("patient", case.patient_id), case.case_id)
        if self.retention_seconds:
            pipe.expire(self._key("patient", case.patient_id), self.retention_seconds)

    async def load_case(self, case_id: str) -> Case | None:
        try:
            raw = await self.redis.get(self._key("case", case_id))
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc
        return Case.model_validate_json(raw) if raw else None

    async def escalate(self, escalation: Escalation) -> None:
        try:
            oldest = None
            if self.escalations_retention_seconds:
                oldest = int((time.time() - self.escalations_retention_seconds) * 1000)
            await self.redis.xadd(
                self._key("escalations"),
                {"json": escalation.model_dump_json()},
                minid=oldest,
                approximate=False,
            )
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc

    async def escalations(self) -> list[Escalation]:
        return [escalation for _, escalation in await self._escalation_entries()]

    async def _escalation_entries(self) -> list[tuple[bytes | str, Escalation]]:
        entries = await self.redis.xrange(self._key("escalations")) or []
        found = []
        for entry_id, fields in entries:
            if entry_id is not None and fields:
                found.append((entry_id, Escalation.model_validate_json(fields[b"json"])))
        return found

    async def forget(self, patient_id: str) -> int:
        try:
            case_ids = await self.redis.smembers(self._key("patient", patient_id))
            keys = [self._key("session", patient_id), self._key("patient", patient_id)]
            keys += [self._key("case", _text(cid)) for cid in case_ids]
            removed = int(await self.redis.delete(*keys))
            removed += await TeamBoard(self.redis, prefix=self.prefix).forget_cases(
                [_text(cid) for cid in case_ids]
            )
            doomed = [
                entry_id for entry_id, e in await self._escalation_entries() if e.patient_id == patient_id
            ]
            if doomed:
                removed += int(await self.redis.xdel(self._key("escalations"), *doomed))
        except _DOWN as exc:
            raise StoreUnavailableError(str(exc)) from exc
        return removed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
