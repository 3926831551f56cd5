"""Each Telegram update is handled once, and none is lost when a process dies mid-way.

Telegram delivers an update again when it thinks the bot did not get it (a webhook that timed
out, a getUpdates offset not confirmed before a crash). `Dedupe`, an outer middleware of the
dispatcher's updates placed before the FSM (patient lock) middleware, claims each update id:

  {p}update:{id}    the owner's token while it is handled: a short TTL (`working_ttl`),
                    renewed every third of it, so a dead process's claim lapses quickly;
                    then "done", kept for `done_ttl` (Telegram keeps updates for 24 hours)
  {p}journal        hash: `{id}` the update as received, `{id}:out` what the consultation
                    service answered (recorded before it is sent), `{id}:tries` replays so far

where {p} is `wz:tg:{<bot id>}:` (a hash tag: one bot's keys stay together on a Redis Cluster).
A second delivery of a done or still-working update is dropped (logged). Both Telegram modes
confirm an update before it is handled (aiogram answers the webhook at once and confirms the
polling offset with the next getUpdates), so Telegram does not deliver again what a killed
process had in hand: the journal does. Every process looks at it every half `working_ttl` and
feeds again, in update order, each update whose claim lapsed without "done" (its process died).
A replayed patient turn whose answer was already recorded is not consulted on again: the
recorded answer is sent (so no message is handled twice; a reply may reach the patient twice if
the process died after sending it, and an escalation in it reaches the team board again, which
folds it into the case's ticket). An update that was replayed `MAX_REPLAYS` times without
finishing (it kills the process?) is given up, with an error in the log.

Limits: a process dying in the instant between the service storing a turn and the answer being
recorded (one Redis write) leaves a turn that is consulted on again; a patient's new message that
arrives after a restart but before a lapsed claim is noticed may be handled before the replay;
while Redis is down nothing is journaled, so what a process has in hand when it dies then is lost.

Taking a claim is a round trip to Redis, so a per-patient turnstile keeps a patient's updates in
their order of arrival up to the FSM middleware's own. When Redis cannot be reached the update
is handled anyway (a safety reply must not wait for Redis), without the check. Without Redis
(tests, a single throwaway process) a bounded in-memory set of update ids does the same, with no
journal. When handling raises, the update is done (a crash loop on a bad update helps nobody);
when it is cancelled (the process is stopping) it stays in the journal for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import (
    EVENT_CONTEXT_KEY,
    EventContext,
    UserContextMiddleware,
)
from aiogram.types import TelegramObject, Update
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.telegram.isolation import KEY_PREFIX
from bot.telegram.renewal import Renewal
from bot.telegram.turnstiles import Turnstiles
from dialog.events import Outbound

log = logging.getLogger(__name__)

CLAIM_KEY = "update_claim"  # workflow data: the Claim of the update being handled
DONE = "done"
DONE_TTL = 24 * 3600.0  # Telegram keeps an unconfirmed update for 24 hours
MAX_REPLAYS = 3
MEMORY_KEPT = 10_000
_DOWN = (RedisError, OSError)
_OUTBOUND = TypeAdapter(list[Outbound])

# KEYS: the update's mark, the journal. ARGV: owner token, TTL in ms, update id, raw update.
# Returns {1, the answer recorded for it or ''} when claimed, else {0, the mark found}.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return {1, redis.call('HGET', KEYS[2], ARGV[3] .. ':out') or ''}
"""
# KEYS: the mark. ARGV: owner token, TTL in ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def key_prefix(bot_id: int) -> str:
    return f"{KEY_PREFIX}:{{{bot_id}}}:"


@dataclass
class Claim:
    """This process handles update `update_id`. `replayed`: the service's answer recorded by a
    process that died before it finished; send it instead of consulting again."""

    update_id: int
    replayed: list[Outbound] | None = None
    journaled: bool = True  # False when Redis could not be reached: handled without the check
    _record: Callable[[Sequence[Outbound]], Awaitable[None]] | None = field(default=None, repr=False)

    async def record(self, actions: Sequence[Outbound]) -> None:
        """Keep the service's answer until the update is done (a replay sends it again)."""
        if self._record is not None:
            await self._record(actions)


class Dedupe(BaseMiddleware):
    """Outer middleware of the dispatcher's updates (before the FSM middleware)."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        working_ttl: float = 30.0,
        done_ttl: float = DONE_TTL,
        kept: int = MEMORY_KEPT,
    ) -> None:
        self.redis = redis
        self.working_ttl = working_ttl
        self.done_ttl = done_ttl
        self.kept = kept
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.recovered = 0
        self._seen: OrderedDict[tuple[int, int], str] = OrderedDict()  # without Redis
        self._arrivals: Turnstiles[Hashable] = Turnstiles()
        self._claim = redis.register_script(_CLAIM) if redis is not None else None
        self._renew = redis.register_script(_RENEW) if redis is not None else None
        self._recovery: asyncio.Task[None] | None = None
        self._replays: set[asyncio.Task[Any]] = set()

    # ---- the middleware ----------------------------------------------------------------

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        bot: Bot = data["bot"]
        async with self._in_order(data):
            claim = await (self._take(bot, event) if self.redis is not None else self._take_here(bot, event))
        if claim is None:
            return None
        data[CLAIM_KEY] = claim
        renewal = None
        if self.redis is not None and claim.journaled:
            renewal = Renewal(lambda: self._keep(bot, event.update_id), self.working_ttl / 3)
        try:
            result = await handler(event, data)
        except asyncio.CancelledError:  # stopping: left in the journal for the next process
            if renewal is not None:
                renewal.cancel()
            raise
        except BaseException:
            await self._finish(bot, event.update_id, renewal)
            raise
        await self._finish(bot, event.update_id, renewal)
        return result

    @asynccontextmanager
    async def _in_order(self, data: dict[str, Any]) -> AsyncIterator[None]:
        context: EventContext | None = data.get(EVENT_CONTEXT_KEY)
        key = (context.chat_id, context.user_id) if context is not None else None
        if key is None or key == (None, None):
            yield
            return
        async with self._arrivals.one_at_a_time(key):
            yield

    async def _take(self, bot: Bot, update: Update) -> Claim | None:
        assert self.redis is not None
        assert self._claim is not None
        prefix = key_prefix(bot.id)
        raw = update.model_dump_json(exclude_unset=True, exclude_none=True)
        try:
            taken, value = await self._claim(
                keys=[f"{prefix}update:{update.update_id}", f"{prefix}journal"],
                args=[self.owner, int(self.working_ttl * 1000), update.update_id, raw],
            )
        except _DOWN as exc:
            log.warning(
                "redis unavailable (%s): update %d handled without the duplicate check",
                type(exc).__name__,
                update.update_id,
            )
            return Claim(update.update_id, journaled=False)
        if not taken:
            state = "already handled" if _text(value) == DONE else "being handled"
            log.info("update %d delivered again (%s): not handled twice", update.update_id, state)
            return None
        replayed = None
        if value:
            with suppress(ValidationError):
                replayed = _OUTBOUND.validate_json(value)
        return Claim(
            update.update_id, replayed, _record=lambda actions: self._keep_answer(bot, update, actions)
        )

    async def _take_here(self, bot: Bot, update: Update) -> Claim | None:
        key = (bot.id, update.update_id)
        if key in self._seen:
            log.info("update %d delivered again (%s): not handled twice", update.update_id, self._seen[key])
            return None
        self._seen[key] = "being handled"
        while len(self._seen) > self.kept:
            self._seen.popitem(last=False)
        return Claim(update.update_id)

    async def _keep_answer(self, bot: Bot, update: Update, actions: Sequence[Outbound]) -> None:
        assert self.redis is not None
        try:
            await self.redis.hset(
                f"{key_prefix(bot.id)}journal",
                f"{update.update_id}:out",
                _OUTBOUND.dump_json(list(actions)).decode(),
            )
        except _DOWN as exc:
            log.warning("update %d: its answer was not recorded (%s)", update.update_id, type(exc).__name__)

    async def _keep(self, bot: Bot, update_id: int) -> bool:
        """Renew the claim while the update is handled."""
        assert self._renew is not None
        key = f"{key_prefix(bot.id)}update:{update_id}"
        try:
            await self._renew(keys=[key], args=[self.owner, int(self.working_ttl * 1000)])
        except _DOWN as exc:
            log.warning("update %d: could not renew its claim (%s)", update_id, type(exc).__name__)
        return True

    async def _finish(self, bot: Bot, update_id: int, renewal: Renewal | None) -> None:
        if renewal is not None:
            await renewal.stop()
        if self.redis is None:
            key = (bot.id, update_id)
            if key in self._seen:
                self._seen[key] = "already handled"
            return
        prefix = key_prefix(bot.id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(f"{prefix}update:{update_id}", DONE, ex=int(self.done_ttl))
                pipe.hdel(f"{prefix}journal", str(update_id), f"{update_id}:out", f"{update_id}:tries")
                await pipe.execute()
        except _DOWN as exc:
            log.warning("update %d: could not mark it done (%s)", update_id, type(exc).__name__)

    # ---- recovery ------------------------------------------------------------------------

    async def start(self, bot: Bot, dispatcher: Dispatcher) -> None:
        """Dispatcher start-up: begin looking for updates a dead process left unfinished."""
        if self.redis is not None and self._recovery is None:
            self._recovery = asyncio.create_task(self._recover_forever(bot, dispatcher))

    async def stop(self) -> None:
        """Dispatcher shutdown: stop looking (replays in hand finish, counted as in flight)."""
        if self._recovery is not None:
            self._recovery.cancel()
            with suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None

    async def _recover_forever(self, bot: Bot, dispatcher: Dispatcher) -> None:
        while True:
            try:
                await self.recover(bot, dispatcher)
            except _DOWN as exc:
                log.debug("recovery skipped: redis unavailable (%s)", type(exc).__name__)
            except Exception:
                log.exception("recovery of unfinished updates failed")
            await asyncio.sleep(max(0.2, self.working_ttl / 2))

    async def recover(self, bot: Bot, dispatcher: Dispatcher) -> int:
        """Feed again, in update order, every update whose claim lapsed unfinished; how many."""
        assert self.redis is not None
        prefix = key_prefix(bot.id)
        journal = f"{prefix}journal"
        entries = {_text(k): v for k, v in (await self.redis.hgetall(journal)).items()}
        ids = sorted(int(name) for name in entries if name.isdigit())
        if not ids:
            return 0
        marks = await self.redis.mget([f"{prefix}update:{update_id}" for update_id in ids])
        fed = 0
        waiting: set[Hashable] = set()  # patients with an earlier update still in hand somewhere
        for update_id, mark in zip(ids, marks, strict=True):
            try:
                update = Update.model_validate_json(entries[str(update_id)], context={"bot": bot})
            except ValidationError:
                log.error("update %d in the journal is unreadable: dropped", update_id)
                await self.redis.hdel(journal, str(update_id), f"{update_id}:out", f"{update_id}:tries")
                continue
            context = UserContextMiddleware.resolve_event_context(update)
            patient = (context.chat_id, context.user_id)
            if mark is not None and _text(mark) == DONE:  # finished meanwhile
                await self.redis.hdel(journal, str(update_id), f"{update_id}:out", f"{update_id}:tries")
                continue
            if mark is not None or patient in waiting:
                waiting.add(patient)  # being handled: the patient's later updates wait for it
                continue
            tries = int(await self.redis.hincrby(journal, f"{update_id}:tries", 1))
            if tries > MAX_REPLAYS:
                log.error("update %d never finished after %d replays: given up", update_id, tries - 1)
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(f"{prefix}update:{update_id}", DONE, ex=int(self.done_ttl))
                    pipe.hdel(journal, str(update_id), f"{update_id}:out", f"{update_id}:tries")
                    await pipe.execute()
                continue
            # fed in update order: the middleware's turnstile keeps a patient's replays in it
            task = asyncio.create_task(self._replay(bot, dispatcher, update))
            self._replays.add(task)
            task.add_done_callback(self._replays.discard)
            fed += 1
        if fed:
            self.recovered += fed
            log.warning("recovering %d update(s) a stopped process left unfinished", fed)
        return fed

    async def _replay(self, bot: Bot, dispatcher: Dispatcher, update: Update) -> None:
        try:
            await dispatcher.feed_update(bot, update)
        except Exception as exc:
            log.error("replayed update %d failed: %s", update.update_id, type(exc).__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
