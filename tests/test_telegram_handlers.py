"""The Telegram patient router over a recording Bot API session (no network), with the real
consultation service on the engine-test protocols and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import AnswerCallbackQuery, EditMessageReplyMarkup, SendChatAction, SendMessage
from aiogram.types import Update
from aiogram.utils.backoff import BackoffConfig
from redis.asyncio import Redis

from bot.telegram import TelegramOptions, create_dispatcher
from bot.telegram.delivery import Delivery, DeliveryPolicy
from bot.telegram.escalations import LogEscalations
from dialog.events import Button, Inbound, Outbound, Reply
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.states import State
from safety import REGIONS
from storage.redis_store import RedisStore
from tests.helpers import fixture_rules_dir
from tests.telegram_fixtures import updates
from tests.telegram_fixtures.recording import TIMEOUT, RecordingSession

FAST = BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2.0, jitter=0.0)


@pytest.fixture(scope="module")
def test_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_rules(fixture_rules_dir(tmp_path_factory.mktemp("fixture")))


@pytest.fixture
def session() -> Iterator[RecordingSession]:
    recording = RecordingSession()
    yield recording
    assert not recording.unexpected, f"unexpected Bot API calls: {recording.unexpected}"


@pytest.fixture
def bot(session: RecordingSession) -> Bot:
    return Bot("42:TEST", session=session)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    service: ConsultationService
    clock: Clock

    async def feed(self, update: dict[str, Any]) -> list[SendMessage]:
        before = len(self.session.sent())
        await self.dispatcher.feed_update(self.bot, Update.model_validate(update, context={"bot": self.bot}))
        return self.session.sent()[before:]

    def patient(self, lang: str = "en") -> Patient:
        return Patient(self, random.randint(10**8, 10**9), lang)


@dataclass
class Patient:
    harness: Harness
    user_id: int
    lang: str
    seen: list[SendMessage] = field(default_factory=list)

    async def _feed(self, update: dict[str, Any]) -> list[SendMessage]:
        got = await self.harness.feed(update)
        self.seen += got
        return got

    async def say(self, text: str) -> list[SendMessage]:
        return await self._feed(updates.message(self.user_id, text, lang=self.lang))

    async def command(self, name: str) -> list[SendMessage]:
        return await self.say(f"/{name}")

    async def tap(self, data: str) -> list[SendMessage]:
        shown = next((m for m in reversed(self.seen) if data in buttons(m)), self.seen[-1])
        message_id = (
            self.harness.session.sent().index(shown) + 1001 if shown in self.harness.session.sent() else 1
        )
        markup = shown.reply_markup.model_dump(exclude_none=True) if shown.reply_markup else None
        return await self._feed(
            updates.tap(self.user_id, data, message_id=message_id, lang=self.lang, keyboard=markup)
        )

    @property
    def last(self) -> SendMessage:
        return self.seen[-1]


def buttons(message: SendMessage) -> list[str]:
    markup = message.reply_markup
    if markup is None:
        return []
    return [button.callback_data or "" for row in markup.inline_keyboard for button in row]  # type: ignore[union-attr]


def rows(message: SendMessage) -> list[list[str]]:
    return [[b.text for b in row] for row in message.reply_markup.inline_keyboard]  # type: ignore[union-attr]


def make_harness(
    service: ConsultationService,
    bot: Bot,
    session: RecordingSession,
    redis: Redis | None,
    *,
    typing_after: float = 5.0,
    burst: int = 50,
) -> Harness:
    clock = Clock()
    delivery = Delivery(
        DeliveryPolicy(attempts=4, urgent_for=5.0, backoff=FAST, typing_after=typing_after), LogEscalations()
    )
    dispatcher = create_dispatcher(
        service,
        redis=redis,
        options=TelegramOptions(throttle_rate=0.5, throttle_burst=burst, set_commands=False),
        delivery=delivery,
        clock=clock,
    )
    return Harness(dispatcher, bot, session, service, clock)


@pytest.fixture
def service(test_rules: RuleSet, redis_store: RedisStore) -> ConsultationService:
    return ConsultationService(test_rules, redis_store, REGIONS["cn"], default_lang="zh")


@pytest.fixture
def harness(service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis) -> Harness:
    return make_harness(service, bot, session, redis)


# ---- consultations ---------------------------------------------------------------------------


async def test_start_asks_consent_first_with_agree_and_decline(harness: Harness) -> None:
    patient = harness.patient("en")
    got = await patient.command("start")
    assert [m.chat_id for m in got] == [patient.user_id] * len(got)
    consent = got[-1]
    assert "I am not a doctor" in consent.text
    assert "120" in consent.text
    assert buttons(consent) == ["consent:yes", "consent:no"]
    assert rows(consent) == [["I agree", "No, thanks"]]  # short answers side by side
    assert harness.session.names() == ["sendMessage"] * len(got)  # no typing for a fast reply


async def test_a_whole_consultation_in_english_through_buttons_and_text(harness: Harness) -> None:
    patient = harness.patient("en")
    await patient.say("I have had a fever since yesterday")
    await patient.tap("consent:yes")
    assert buttons(patient.last) == ["who:self", "who:child", "who:other"]
    await patient.tap("who:self")
    await patient.say("34")
    await patient.tap("sex:F")
    assert "Is the neck stiff?" in patient.last.text
    assert buttons(patient.last) == ["a:stiff_neck:yes", "a:stiff_neck:no", "a:stiff_neck:unsure"]
    assert len(rows(patient.last)) == 1  # yes / no / not sure in one row
    await patient.tap("a:stiff_neck:no")
    await patient.say("as usual")
    await patient.tap("open:none")
    advice = patient.last
    assert "Rest and drink fluids." in advice.text
    assert advice.reply_markup is None
    # every tap was answered; each keyboard was taken away once answered, by a tap or in words
    assert len(harness.session.calls(AnswerCallbackQuery)) == 5
    with_keyboards = [m for m in harness.session.sent() if m.reply_markup is not None]
    removed = [call.message_id for call in harness.session.calls(EditMessageReplyMarkup)]
    assert len(removed) == len(with_keyboards) == 6
    assert len(set(removed)) == 6
    assert all(m.chat_id == patient.user_id for m in harness.session.sent())


async def test_a_consultation_in_chinese_with_free_text(harness: Harness) -> None:
    patient = harness.patient("zh-hans")
    await patient.say("孩子发烧三天了，烧到39度")
    assert "我不是医生" in patient.last.text
    await patient.tap("consent:yes")
    await patient.say("两岁")
    await patient.tap("sex:M")
    assert "脖子发硬吗" in patient.last.text
    await patient.say("没有")
    await patient.say("比平时少")
    await patient.say("没有了")
    assert "今天看医生" in patient.last.text


async def test_the_emergency_path_is_answered_and_escalated_without_message_text_in_logs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    patient = harness.patient("en")
    await patient.command("start")
    await patient.tap("consent:yes")
    with caplog.at_level(logging.INFO):
        got = await patient.say("crushing chest pain and I am sweating a lot")
    assert any("120" in m.text and "emergency" in m.text.lower() for m in got)
    escalations = [r for r in caplog.records if "escalation" in r.getMessage()]
    assert len(escalations) == 1
    assert "reason=red_flag" in escalations[0].getMessage()
    assert "priority=0" in escalations[0].getMessage()
    assert all("crushing" not in r.getMessage() and "I am" not in r.getMessage() for r in caplog.records)


async def test_consent_declined_then_forget_really_deletes(harness: Harness, redis_store: RedisStore) -> None:
    patient = harness.patient("en")
    await patient.say("I have a cough")
    await patient.tap("consent:no")
    assert "I have not kept anything" in patient.last.text
    await patient.command("start")
    await patient.tap("consent:yes")
    await patient.tap("who:self")
    assert await redis_store.load(f"tg:{patient.user_id}") is not None
    await patient.command("forget")
    assert buttons(patient.last) == ["forget:yes", "forget:no"]
    await patient.tap("forget:yes")
    assert "deleted" in patient.last.text
    assert await redis_store.load(f"tg:{patient.user_id}") is None


async def test_commands_help_language_and_unknown(harness: Harness) -> None:
    patient = harness.patient("en")
    await patient.command("help")
    assert "/restart" in patient.last.text
    await patient.say("/whatever@wenzhen_bot")
    assert "/restart" in patient.last.text  # an unknown command gets the help
    await patient.command("language")
    assert any("中文" in m.text or "我" in m.text for m in patient.seen[-2:])


async def test_media_gets_a_clear_reply_and_a_caption_is_read(harness: Harness) -> None:
    patient = harness.patient("en")
    for kind in ("voice", "sticker", "document", "location", "video"):
        got = await patient._feed(updates.media(patient.user_id, kind))
        assert any("I can only read text" in m.text for m in got), kind
    got = await patient._feed(updates.photo(patient.user_id))
    assert any("I can only read text" in m.text for m in got)
    got = await patient._feed(updates.photo(patient.user_id, caption="he is unconscious, won't wake up"))
    assert any("120" in m.text for m in got)


async def test_groups_channels_and_bots_are_not_served(harness: Harness, session: RecordingSession) -> None:
    user = 777
    await harness.feed(updates.message(user, "chest pain and sweating", chat_type="group", chat_id=-100))
    await harness.feed(updates.message(user, "/start", chat_type="supergroup", chat_id=-1001))
    await harness.feed(updates.tap(user, "consent:yes", message_id=5, chat_type="group", chat_id=-100))
    assert session.requests == []


async def test_a_foreign_or_stale_tap_is_answered_and_passed_to_the_service(harness: Harness) -> None:
    patient = harness.patient("en")
    await patient.command("start")
    got = await patient._feed(updates.tap(patient.user_id, "evil:<script>", message_id=1))
    assert got  # the service answers it (here: consent is needed first)
    assert harness.session.calls(AnswerCallbackQuery)


# ---- layout ----------------------------------------------------------------------------------


class Scripted(ConsultationService):
    """The real service with `handle` replaced (a slow one, a failing one, a long reply)."""

    def __init__(self, base: ConsultationService, replies: list[Outbound] | None = None) -> None:
        super().__init__(base.rules, base.store, base.region, default_lang="en")
        self.replies = replies or []
        self.delay = 0.0
        self.fail = False
        self.seen: list[Inbound] = []

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        self.seen.append(inbound)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("engine exploded: secret patient words")
        return list(self.replies) or await super().handle(inbound)


async def test_a_long_reply_is_split_with_the_keyboard_on_the_last_part(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    paragraph = "Keep warm and drink water. " * 30
    long_text = "\n\n".join([paragraph] * 12)  # about 9800 characters
    choice = (
        Button(label="Less than usual, much less", data="a:q:x"),
        Button(label="As usual", data="a:q:y"),
    )
    scripted = Scripted(service, [Reply(text=long_text, lang="en", buttons=choice)])
    harness = make_harness(scripted, bot, session, redis)
    got = await harness.feed(updates.message(5, "hello"))
    assert len(got) == 3
    assert all(len(m.text) <= 4096 for m in got)
    assert "".join(m.text for m in got).replace("\n", "").replace(" ", "") == long_text.replace(
        "\n", ""
    ).replace(" ", "")
    assert [m.reply_markup is None for m in got] == [True, True, False]
    assert rows(got[-1]) == [["Less than usual, much less"], ["As usual"]]  # long labels: one per row


async def test_typing_is_shown_while_the_service_is_slow(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    scripted = Scripted(service)
    scripted.delay = 0.2
    harness = make_harness(scripted, bot, session, redis, typing_after=0.05)
    await harness.feed(updates.message(6, "/start"))
    names = session.names()
    assert names[0] == "sendChatAction"
    assert session.calls(SendChatAction)[0].action == "typing"
    assert "sendMessage" in names[1:]


# ---- faults ----------------------------------------------------------------------------------


async def test_429_is_waited_out_and_5xx_and_timeouts_are_retried(harness: Harness) -> None:
    harness.session.fail(SendMessage, 429, 500, TIMEOUT)
    patient = harness.patient("en")
    got = await patient.command("help")
    assert len(got) == 1
    assert "/restart" in got[0].text
    assert len(harness.session.calls(SendMessage)) == 4


async def test_an_ordinary_reply_is_given_up_after_a_few_tries_but_an_urgent_one_is_not(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    patient = harness.patient("en")
    await patient.command("start")
    await patient.tap("consent:yes")
    harness.session.fail(SendMessage, *[500] * 4)
    harness.session.clear()
    await patient.command("help")
    assert harness.session.sent() == []  # four failures: given up, nothing crashed
    harness.session.fail(SendMessage, *[500] * 9)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await patient.say("he is unconscious and won't wake up")
    delivered = harness.session.sent()
    assert len(delivered) == 1
    assert "120" in delivered[0].text
    tries = [m for m in harness.session.calls(SendMessage) if m.text == delivered[0].text]
    assert len(tries) == 10  # nine failures, then delivered
    assert not any("not delivered" in r.getMessage() for r in caplog.records)


async def test_a_blocked_bot_ends_quietly(harness: Harness) -> None:
    patient = harness.patient("en")
    harness.session.fail(SendMessage, 403)
    got = await patient.say("I have a cough")  # welcome + consent: the first is refused
    assert got == []
    assert len(harness.session.calls(SendMessage)) == 1  # nothing more was tried
    stored = await harness.service.store.load(f"tg:{patient.user_id}")
    assert stored is not None
    assert stored.state is State.CLOSED  # the consultation ended quietly


async def test_no_stack_trace_reaches_the_patient(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    scripted = Scripted(service)
    scripted.fail = True
    harness = make_harness(scripted, bot, session, redis)
    got = await harness.feed(updates.message(8, "hello there my friend", lang="en"))
    assert len(got) == 1
    assert "temporary problem" in got[0].text
    assert "Traceback" not in got[0].text
    assert "exploded" not in got[0].text
    # a tap that fails is still answered, then apologised for
    session.clear()
    await harness.feed(updates.tap(8, "who:self", message_id=3))
    assert session.names() == ["answerCallbackQuery", "sendMessage"]


async def test_an_emergency_is_answered_even_when_the_engine_fails(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    scripted = Scripted(service)
    scripted.fail = True
    harness = make_harness(scripted, bot, session, redis)
    got = await harness.feed(updates.message(9, "chest pain and sweating", lang="en"))
    assert any("120" in m.text and "temporary problem" not in m.text for m in got)


async def test_an_emergency_is_answered_when_redis_is_down(
    test_rules: RuleSet, bot: Bot, session: RecordingSession
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=1, socket_timeout=1)
    try:
        service = ConsultationService(test_rules, RedisStore(dead), REGIONS["cn"], default_lang="en")
        harness = make_harness(service, bot, session, dead)
        got = await asyncio.wait_for(harness.feed(updates.message(10, "chest pain and sweating")), 10)
    finally:
        await dead.aclose()
    assert any("120" in m.text for m in got)


# ---- floods and ordering ---------------------------------------------------------------------


async def test_a_flood_is_throttled_politely_yet_every_message_is_screened(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    harness = make_harness(service, bot, session, redis, burst=3)
    patient = harness.patient("en")
    for _ in range(3):
        assert await patient.say("hello")  # within the burst: answered
    notice = await patient.say("hello")
    assert len(notice) == 1
    assert "faster than I can read" in notice[0].text
    assert await patient.say("hello") == []  # told once per burst
    emergency = await patient.say("chest pain and sweating")  # still screened
    assert any("120" in m.text for m in emergency)
    harness.clock.now += 10  # the bucket refills
    assert await patient.say("hello")


async def test_one_patients_fast_taps_are_handled_in_order(
    service: ConsultationService, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    scripted = Scripted(service, [Reply(text="ok", lang="en")])
    scripted.delay = 0.02
    harness = make_harness(scripted, bot, session, redis)
    taps = [updates.tap(11, f"a:q:{n}", message_id=n) for n in range(8)]
    await asyncio.gather(*(harness.feed(tap) for tap in taps))
    assert [inbound.data for inbound in scripted.seen] == [f"a:q:{n}" for n in range(8)]
    assert [inbound.update_id for inbound in scripted.seen] == [tap["update_id"] for tap in taps]


async def test_the_throttle_forgets_idle_patients() -> None:
    from bot.telegram.throttle import TokenBuckets

    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    for user in range(3000):
        buckets.take(user)
        clock.now += 0.01
    assert len(buckets) < 3000


@pytest.fixture
async def second_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_two_processes_serialise_one_patient_and_slow_handling_keeps_the_lock(
    redis: Redis, second_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from aiogram.fsm.storage.base import StorageKey

    from bot.telegram.isolation import PatientIsolation, key_builder

    one = PatientIsolation(redis, key_builder(), timeout=0.3, poll=0.01)
    two = PatientIsolation(second_redis, key_builder(), timeout=0.3, poll=0.01)
    key = StorageKey(bot_id=42, chat_id=random.randint(1, 10**9), user_id=1)
    key = StorageKey(bot_id=42, chat_id=key.chat_id, user_id=key.chat_id)
    inside = 0
    most = 0

    async def work(isolation: PatientIsolation) -> None:
        nonlocal inside, most
        async with isolation.lock(key):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.5)  # longer than the lock's time to live: it is renewed
            inside -= 1

    with caplog.at_level(logging.WARNING):
        await asyncio.gather(work(one), work(two), work(one))
    assert most == 1
    assert not [r for r in caplog.records if "expired" in r.getMessage()]
    assert await redis.exists(key_builder().build(key, "lock")) == 0


class SlowPhraser:
    """A model that takes its time rewording, until the patient moves on (cancel)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self._pending: dict[str, asyncio.Event] = {}

    def speaks(self, lang: str) -> bool:
        return True

    async def phrase(self, kind: str, lang: str, template: str, *, key: str) -> str | None:
        moved_on = self._pending[key] = asyncio.Event()
        self.started.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(moved_on.wait(), 10)
        return None

    def cancel(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.set()


async def test_a_new_message_does_not_wait_for_the_model_rewording_the_last_turn(
    test_rules: RuleSet, redis_store: RedisStore, bot: Bot, session: RecordingSession, redis: Redis
) -> None:
    phraser = SlowPhraser()
    service = ConsultationService(
        test_rules,
        redis_store,
        REGIONS["cn"],
        default_lang="en",
        phraser=phraser,  # type: ignore[arg-type]
    )
    harness = make_harness(service, bot, session, redis)
    patient = harness.patient("en")
    await patient.say("I have a fever")
    await patient.tap("consent:yes")
    await patient.tap("who:self")
    await patient.say("34")
    question = asyncio.ensure_future(patient.tap("sex:F"))  # its question goes to the slow model
    await asyncio.wait_for(phraser.started.wait(), 5)
    started = asyncio.get_running_loop().time()
    emergency = await asyncio.wait_for(patient.say("chest pain and sweating"), 5)
    assert asyncio.get_running_loop().time() - started < 2
    assert any("120" in m.text for m in emergency)
    asked = await question
    assert any("Is the neck stiff?" in m.text for m in asked)  # the protocol's own wording


async def test_an_emergency_written_into_an_edited_message_is_answered(harness: Harness) -> None:
    patient = harness.patient("en")
    await patient.say("I have had a fever since yesterday")
    quiet = updates.message(patient.user_id, "I have had a fever since yesterday, mild", lang="en")
    quiet["edited_message"] = quiet.pop("message") | {"edit_date": 1}
    assert await harness.feed(quiet) == []  # an ordinary edit changes nothing
    alarm = updates.message(patient.user_id, "my husband is unconscious and won't wake up", lang="en")
    alarm["edited_message"] = alarm.pop("message") | {"edit_date": 1}
    sent = await harness.feed(alarm)
    assert len(sent) == 1
    assert "120" in sent[0].text
    assert "edited_message" in harness.dispatcher.resolve_used_update_types()
