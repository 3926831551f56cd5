"""Prometheus metrics of the Telegram frontend, counted at the wiring level.

`dialog/` and `safety/` stay free of I/O frameworks: nothing here reaches into them. What the
consultation service decided is read from the actions it returns (as `Delivery` sends them); the
guard's decisions from `OutputGuard.counts`; the generation queue's depth, wait and outcomes from
`GenerationQueue.snapshot()`; model fallbacks from a thin wrapper around the service's phraser.
Labels are ids only (levels, red-flag ids, reasons, error kinds): never patient text or ids.

    wenzhen_turns_total{kind}                 updates handled in private chats (message, callback_query)
    wenzhen_turn_seconds{kind}                handling time of one update, answer sent included
    wenzhen_levels_total{level}               triage levels given (advice, or a new red flag's level)
    wenzhen_red_flags_total{flag}             red flags raised (each flag once per case)
    wenzhen_crisis_total                      crisis events (self-harm or suicide language)
    wenzhen_escalations_total{reason}         cases handed to the doctor team
    wenzhen_telegram_errors_total{kind}       failed Bot API calls of the delivery
    wenzhen_telegram_retries_total            Bot API calls retried by the delivery
    wenzhen_guard_decisions_total{decision}   model texts accepted, or the rejection reason
    wenzhen_template_fallbacks_total{reason}  model phrasing not used: no model text, or the guard
    wenzhen_generation_*                      the generation queue: depth, running, wait, outcomes
    wenzhen_model_circuit_open                1 while the model's circuit breaker is open
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dialog.events import Escalation, Outbound, Reply
from dialog.phrasing import PhraseKind, Phraser, ReadingRequest
from model.queue import GenerationQueue
from safety import Lang
from safety.guard import OutputGuard

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def error_kind(exc: BaseException) -> str:
    """A short label for a failed Bot API call."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (TelegramRetryAfter, "retry_after"),
        (TelegramForbiddenError, "forbidden"),
        (TelegramUnauthorizedError, "unauthorized"),
        (TelegramNotFound, "not_found"),
        (TelegramBadRequest, "bad_request"),
        (TelegramServerError, "server"),
        (TelegramNetworkError, "network"),
        (ClientDecodeError, "decode"),
        (TelegramAPIError, "other"),
    )
    return next((label for kind, label in kinds if isinstance(exc, kind)), "other")


class Metrics:
    """The bot's metrics in their own registry (several bots, or tests, in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter("wenzhen_turns", "Updates handled in private chats", ["kind"], registry=r)
        self.turn_seconds = Histogram(
            "wenzhen_turn_seconds",
            "Time to handle one update, the answer sent included",
            ["kind"],
            buckets=TURN_BUCKETS,
            registry=r,
        )
        self.levels = Counter("wenzhen_levels", "Triage levels given", ["level"], registry=r)
        self.red_flags = Counter("wenzhen_red_flags", "Red flags raised", ["flag"], registry=r)
        self.crisis = Counter("wenzhen_crisis", "Crisis events", registry=r)
        self.escalations = Counter(
            "wenzhen_escalations", "Cases handed to the doctor team", ["reason"], registry=r
        )
        self.telegram_errors = Counter(
            "wenzhen_telegram_errors", "Failed Bot API calls of the delivery", ["kind"], registry=r
        )
        self.telegram_retries = Counter(
            "wenzhen_telegram_retries", "Bot API calls retried by the delivery", registry=r
        )

    # ---- what the frontend reports ------------------------------------------------------

    def observe_actions(self, actions: Sequence[Outbound]) -> None:
        """What one batch of the service's actions says: escalations, red flags, crisis, levels.

        A level counts once per disposition: advice, or the reply to a newly raised red flag
        (that reply comes with its escalation); the follow-ups of an alarm repeat no level.
        """
        alarms = [a for a in actions if isinstance(a, Escalation) and a.reason in ("red_flag", "crisis")]
        for action in actions:
            if isinstance(action, Escalation):
                self.escalations.labels(action.reason).inc()
                if action.reason in ("red_flag", "crisis"):
                    for flag in action.flags:
                        self.red_flags.labels(flag).inc()
                if action.reason == "crisis":
                    self.crisis.inc()
            elif (
                isinstance(action, Reply)
                and action.triage is not None
                and (action.purpose == "advice" or (action.purpose in ("emergency", "crisis") and alarms))
            ):
                self.levels.labels(action.triage.level.value).inc()

    def telegram_error(self, exc: BaseException) -> None:
        self.telegram_errors.labels(error_kind(exc)).inc()

    def telegram_retry(self) -> None:
        self.telegram_retries.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ---- wiring --------------------------------------------------------------------------

    def watch(
        self,
        *,
        guard: OutputGuard | None = None,
        queue: GenerationQueue | None = None,
        phraser: CountingPhraser | None = None,
    ) -> None:
        """Expose the guard's, the queue's and the phraser's own counts, read at each scrape."""
        self.registry.register(_EngineCollector(guard, queue, phraser))

    def middleware(self) -> TurnMetrics:
        return TurnMetrics(self)


class TurnMetrics(BaseMiddleware):
    """Outer middleware of the dispatcher's updates: turns and their handling time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        result = await handler(event, data)
        if isinstance(event, Update) and result is not UNHANDLED and _private(event):
            kind = event.event_type
            self.metrics.turns.labels(kind).inc()
            self.metrics.turn_seconds.labels(kind).observe(time.perf_counter() - started)
        return result


def _private(update: Update) -> bool:
    if update.message is not None:
        return update.message.chat.type == "private"
    if update.callback_query is not None and update.callback_query.message is not None:
        return update.callback_query.message.chat.type == "private"
    return False


class CountingPhraser:
    """The service's phraser, counting the phrasings that gave no usable text (the template
    went out instead). Everything else passes through unchanged."""

    def __init__(self, inner: Phraser) -> None:
        self.inner = inner
        self.asked = 0
        self.no_text = 0

    def speaks(self, lang: Lang) -> bool:
        return self.inner.speaks(lang)

    async def phrase(self, kind: PhraseKind, lang: Lang, template: str, *, key: str) -> str | None:
        worded = await self.inner.phrase(kind, lang, template, key=key)
        self.asked += 1
        if not worded or worded.strip() == template.strip():
            self.no_text += 1
        return worded

    async def read_answer(self, request: ReadingRequest, *, key: str) -> str | float | None:
        return await self.inner.read_answer(request, key=key)

    def cancel(self, key: str) -> None:
        self.inner.cancel(key)


class _EngineCollector(Collector):
    def __init__(
        self, guard: OutputGuard | None, queue: GenerationQueue | None, phraser: CountingPhraser | None
    ) -> None:
        self.guard = guard
        self.queue = queue
        self.phraser = phraser

    def describe(self) -> Iterable[Metric]:
        return []  # families are made at collect time; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        decisions = CounterMetricFamily(
            "wenzhen_guard_decisions", "Model texts checked by the output guard", labels=["decision"]
        )
        rejected = 0
        for decision, count in sorted((self.guard.counts if self.guard else {}).items()):
            decisions.add_metric([decision], count)
            rejected += count if decision != "accepted" else 0
        yield decisions
        fallbacks = CounterMetricFamily(
            "wenzhen_template_fallbacks", "Model phrasings replaced by the template", labels=["reason"]
        )
        fallbacks.add_metric(["guard"], rejected)
        fallbacks.add_metric(["no_model_text"], self.phraser.no_text if self.phraser else 0)
        yield fallbacks
        if self.queue is None:
            return
        stats = self.queue.snapshot()
        yield GaugeMetricFamily(
            "wenzhen_generation_queue_depth", "Generation requests waiting", value=stats.pending
        )
        yield GaugeMetricFamily("wenzhen_generation_running", "Generations running", value=stats.running)
        yield GaugeMetricFamily(
            "wenzhen_generation_oldest_wait_seconds",
            "How long the longest-waiting generation request has waited",
            value=stats.oldest_wait_s,
        )
        yield CounterMetricFamily(
            "wenzhen_generation_started", "Generation requests a worker took up", value=stats.started
        )
        yield CounterMetricFamily(
            "wenzhen_generation_wait_seconds",
            "Total time generation requests waited before a worker took them up",
            value=stats.waited_s,
        )
        outcomes = CounterMetricFamily(
            "wenzhen_generation_outcomes", "Generation requests by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(stats.outcomes.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield GaugeMetricFamily(
            "wenzhen_model_circuit_open",
            "1 while the model's circuit breaker is open",
            value=1 if stats.circuit == "open" else 0,
        )


def instrument(dispatcher: Dispatcher, metrics: Metrics) -> None:
    """Count every update the dispatcher handles. Registered last of the outer middlewares, so
    inside the patient's lock: a turn is timed from when it is taken up, not while it waits
    behind the same patient's previous message."""
    dispatcher.update.outer_middleware(metrics.middleware())
