"""`create_dispatcher`: the aiogram Dispatcher for wenzhen, with its services injected.

Workflow data (what handlers and middlewares receive by name):
  service      the ConsultationService (the one entry point into the engine)
  delivery     Delivery: sends replies with Telegram's faults handled, publishes escalations
  texts        Texts: the frontend's own locale texts (`telegram.*`, `error.temporary`)
  inflight     InFlight: the updates being handled (the runners drain it before stopping)
  dedupe       Dedupe: each update handled once; updates a dead process left are fed again
  team_desk    TeamDesk, when teams are configured: the team groups' router acts through it
  rules_keeper RulesKeeper: operators' /reload in a team group

FSM storage and event isolation use Redis (`PatientStorage`, `PatientIsolation`) when a client
is given, else memory (tests, or a single process that needs no restart safety).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import BotCommand
from redis.asyncio import Redis

from bot.config import Settings
from bot.rules_keeper import RulesKeeper
from bot.telegram.dedupe import Dedupe
from bot.telegram.delivery import Delivery, DeliveryPolicy
from bot.telegram.escalations import EscalationSink, LogEscalations
from bot.telegram.inflight import InFlight
from bot.telegram.interrupt import Interrupt
from bot.telegram.isolation import PatientStorage, key_builder
from bot.telegram.patients import create_router
from bot.telegram.team_desk import TeamDesk
from bot.telegram.team_router import create_team_router
from bot.telegram.texts import TELEGRAM_COMMANDS, Texts
from bot.telegram.throttle import TokenBuckets
from dialog.service import ConsultationService
from safety import Lang

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelegramOptions:
    throttle_rate: float = 1.0  # messages per second per patient, on average
    throttle_burst: int = 6  # messages a patient may send at once
    typing_after: float = 0.5  # seconds before "typing…" is shown
    lock_timeout: float = 30.0  # per-patient Redis lock TTL: renewed while held, so it only
    # bounds how long a crashed process's lock keeps its patient waiting
    urgent_retry_for: float = 600.0  # seconds an emergency reply keeps being retried
    retry_attempts: int = 4  # tries for an ordinary reply
    set_commands: bool = True  # publish the command menu (setMyCommands) at start-up

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramOptions:
        return cls(
            throttle_rate=settings.telegram_throttle_rate,
            throttle_burst=settings.telegram_throttle_burst,
            typing_after=settings.telegram_typing_after,
            lock_timeout=settings.telegram_lock_timeout,
            urgent_retry_for=settings.telegram_urgent_retry_for,
        )

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            attempts=self.retry_attempts, urgent_for=self.urgent_retry_for, typing_after=self.typing_after
        )


def create_dispatcher(
    service: ConsultationService,
    *,
    redis: Redis | None = None,
    options: TelegramOptions | None = None,
    escalations: EscalationSink | None = None,
    delivery: Delivery | None = None,
    team_desk: TeamDesk | None = None,
    rules_keeper: RulesKeeper | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Dispatcher:
    """The dispatcher with the patient router, and the team router when `team_desk` is given.
    `delivery` replaces the default sender built from `options` and `escalations` (or the desk);
    `clock` drives the flood throttle (tests). Raises MissingTextsError when the locale files
    lack the frontend's texts."""
    options = options or TelegramOptions()
    texts = Texts(lambda: service.rules, service.region)
    storage: BaseStorage
    isolation: BaseEventIsolation
    if redis is not None:
        redis_storage = PatientStorage(redis, key_builder=key_builder())
        storage, isolation = redis_storage, redis_storage.create_isolation(timeout=options.lock_timeout)
    else:
        storage, isolation = MemoryStorage(), SimpleEventIsolation()
    delivery = delivery or Delivery(options.delivery_policy(), escalations or team_desk or LogEscalations())
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        name="wenzhen",
        service=service,
        delivery=delivery,
        texts=texts,
        inflight=InFlight(),
        dedupe=Dedupe(redis, working_ttl=options.lock_timeout),
        team_desk=team_desk,
        rules_keeper=rules_keeper,
    )
    # On arrival, before an update waits for its patient's lock (the FSM middleware): count it,
    # drop it if it was delivered before, and stop the model rewording that patient's turn in hand.
    dispatcher.update.outer_middleware.unregister(dispatcher.fsm)
    dispatcher.update.outer_middleware(dispatcher["inflight"])
    dispatcher.update.outer_middleware(dispatcher["dedupe"])
    dispatcher.update.outer_middleware(Interrupt())
    dispatcher.update.outer_middleware(dispatcher.fsm)
    dispatcher.include_router(
        create_router(TokenBuckets(options.throttle_rate, options.throttle_burst, clock=clock))
    )
    if team_desk is not None:
        dispatcher.include_router(create_team_router())
    if options.set_commands:
        dispatcher.startup.register(publish_commands)
    dispatcher.startup.register(dispatcher["dedupe"].start)
    dispatcher.shutdown.register(dispatcher["dedupe"].stop)
    return dispatcher


async def publish_commands(bot: Bot, texts: Texts, service: ConsultationService) -> None:
    """The command menu of Telegram clients, in the client's language (default: the bot's)."""
    menus: tuple[tuple[str | None, Lang], ...] = ((None, service.default_lang), ("en", "en"), ("zh", "zh"))
    for language_code, lang in menus:
        commands = [
            BotCommand(command=name, description=texts.get(f"telegram.commands.{name}", lang))
            for name in TELEGRAM_COMMANDS
        ]
        try:
            await bot.set_my_commands(commands, language_code=language_code)
        except TelegramAPIError as exc:
            log.warning(
                "could not publish the command menu (%s): %s", language_code or "default", exc.message
            )
