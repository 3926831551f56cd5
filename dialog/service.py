"""The consultation service: the one entry point every frontend calls.

`handle(inbound)` screens the message with `safety` first, then lets the handler of the current
state work out what happened (a Trigger); `dialog.states` decides where that leads. The next
step of a consultation (intake item, complaint, follow-up question, open question, advice) is
always derived from the case itself by `_advance`, so a restarted process resumes exactly where
the stored case stands.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from dialog.advice import advice_text, question_buttons
from dialog.casework import Casework
from dialog.conditions import Value
from dialog.engines import Engine, RuleVersions
from dialog.events import (
    Button,
    Escalation,
    Expect,
    Inbound,
    Outbound,
    Relay,
    Reply,
    TriageOutcome,
)
from dialog.phrasing import PhraseKind, Phraser, ReadingRequest
from dialog.protocol import Protocol, Quantity, Question, QuestionType, Rule
from dialog.ruleset import RuleSet
from dialog.session import Case, Disposition, Pending, Session, Turn
from dialog.states import State, Trigger, next_state
from dialog.store import Store, StoreUnavailableError
from dialog.triage import unconfirmed_signs
from dialog.understand import (
    agrees,
    decisive,
    matching_protocols,
    read_age_reply,
    read_reply,
    read_sex_reply,
    read_who_reply,
    read_yes_no,
    says_nothing_more,
    substantive,
)
from safety import (
    Lang,
    Level,
    Outcome,
    Region,
    Responder,
    ScreenContext,
    Screener,
    ScreenResult,
    detect_language,
    normalise,
)
from safety.guard import OutputGuard
from safety.redflags import FlagKind, RedFlag

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
MAX_OTHERS_NAMED = 3
STRICT_PREFIX = (
    "rf_"  # a red flag's strict twin of a protocol concept  # other complaints named in the advice
)
MAX_OPEN_ROUNDS = 3
MAX_ATTEMPTS = 2
MAX_UNSAVED_ALARMS = 10_000


@dataclass(slots=True)
class _PatientLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass(frozen=True, slots=True)
class _Phrasable:
    """A part of an outgoing reply the model may reword: a question, or the advice body."""

    reply: Reply
    segment: str
    kind: PhraseKind
    level: Level | None


@dataclass
class _Turn:
    """What one inbound message produces."""

    session: Session
    lang: Lang
    out: list[Outbound] = field(default_factory=list)
    phrasable: list[_Phrasable] = field(default_factory=list)
    model_reading: Value | None = None  # the model's reading of a reply the lexicon could not read

    @property
    def case(self) -> Case:
        assert self.session.case is not None
        return self.session.case


class ConsultationService:
    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        region: Region,
        *,
        default_lang: Lang = "zh",
        retention_days: int = 30,
        escalate_at: Level = Level.EMERGENCY,
        phraser: Phraser | None = None,
        phrase_kinds: frozenset[PhraseKind] = frozenset({"question", "advice"}),
    ) -> None:
        self.store = store
        self.region = region
        self.default_lang = default_lang
        self.retention_days = retention_days
        self.escalate_at = escalate_at
        self.phraser = phraser
        self.phrase_kinds = phrase_kinds
        self.guard = OutputGuard(region.numbers)
        self.versions = RuleVersions(rules, region)
        self._locks: dict[str, _PatientLock] = {}
        self._unsaved_alarms: dict[str, Case] = {}

    @asynccontextmanager
    async def _one_at_a_time(self, patient_id: str) -> AsyncIterator[None]:
        """A patient's events are handled one at a time; the lock goes when nobody holds or
        waits for it (a long-running bot sees millions of patients)."""
        entry = self._locks.setdefault(patient_id, _PatientLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[patient_id]

    # ---- the rules in force ------------------------------------------------------------

    @property
    def rules(self) -> RuleSet:
        """The rules of the consultation in hand (its own version), else the live rules."""
        return self._engine.rules

    @property
    def screener(self) -> Screener:
        return self._engine.screener

    @property
    def casework(self) -> Casework:
        return self._engine.casework

    @property
    def responder(self) -> Responder:
        return self._engine.responder

    @property
    def live_rules(self) -> RuleSet:
        return self.versions.live.rules

    @property
    def _engine(self) -> Engine:
        return self.versions.current

    def use_rules(self, rules: RuleSet) -> None:
        """Make `rules` live: new consultations use them; those in progress finish on the version
        they started with (kept while at most `KEPT_VERSIONS` versions are in use)."""
        self.versions.use(rules)

    # ---- entry point -------------------------------------------------------------------

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """Everything the bot says and does in answer to one inbound event."""
        self.interrupt(inbound.patient_id)
        async with self._one_at_a_time(inbound.patient_id):
            token = self.versions.enter(None)
            try:
                return await self._handle(inbound)
            except Exception as exc:  # the patient must get an answer, never a stack trace
                log.error(
                    "turn failed for %s: %s",
                    _alias(inbound.patient_id),
                    type(exc).__name__,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                lang = self.default_lang
                text = (
                    self.rules.text("error.temporary").get(lang).format(number=self.region.emergency_number)
                )
                return [Reply(text=text, lang=lang, purpose="error")]
            finally:
                self.versions.leave(token)

    async def patient_unreachable(self, patient_id: str) -> None:
        """The frontend cannot reach the patient any more (they blocked the bot): end the
        consultation quietly; nothing is deleted (the patient can come back, or /forget)."""
        async with self._one_at_a_time(patient_id):
            try:
                session = await self.store.load(patient_id)
                if session is None or session.state is State.CLOSED:
                    return
                session.state = next_state(session.state, Trigger.UNREACHABLE)
                session.pending = Pending()
                if session.case is not None:
                    session.case.transcript.append(Turn(role="system", text="patient unreachable"))
                await self.store.save(session)
            except StoreUnavailableError:
                log.warning("storage unavailable: could not close the case of %s", _alias(patient_id))

    def interrupt(self, patient_id: str) -> None:
        """The patient sent something new: stop rewording their previous reply, so the new message
        (perhaps an emergency) does not wait behind it. Frontends call this on arrival, before any
        per-patient lock of their own; `handle` calls it too."""
        if self.phraser is not None:
            self.phraser.cancel(patient_id)

    async def screen_only(self, inbound: Inbound) -> list[Outbound]:
        """For a message the frontend will not consult on (a flood): the safety screen still runs,
        and an emergency or crisis is answered exactly as `handle` would; otherwise nothing."""
        async with self._one_at_a_time(inbound.patient_id):
            try:
                session, stored = await self.store.load(inbound.patient_id), True
            except StoreUnavailableError:
                session, stored = None, False
            session = session or Session(patient_id=inbound.patient_id)
            token = self.versions.enter(self.versions.for_session(session))
            try:
                return await self._screen_only(inbound, session, stored)
            finally:
                self.versions.leave(token)

    async def _screen_only(self, inbound: Inbound, session: Session, stored: bool) -> list[Outbound]:
        text = inbound.text[:MAX_TEXT_CHARS] if inbound.kind == "text" else ""
        screen = self.screener.screen(text, self._context(session), self._button_findings(session, inbound))
        if not screen.is_alarm:
            return []
        turn = _Turn(session, self._language(session, text, inbound.lang_hint))
        self._ensure_case(session).transcript.append(Turn(role="patient", text=text))
        self._alarm(turn, screen)
        await self._persist(turn, stored)
        return turn.out

    async def _handle(self, inbound: Inbound) -> list[Outbound]:
        text = inbound.text[:MAX_TEXT_CHARS] if inbound.kind == "text" else ""
        try:
            session = await self.store.load(inbound.patient_id)
        except StoreUnavailableError:
            session = None
            stored = False
        else:
            stored = True
        session = session or Session(patient_id=inbound.patient_id)
        if stored:
            self._restore_unsaved_alarm(session)
        self.versions.enter(self.versions.for_session(session))
        lang = self._language(session, text, inbound.lang_hint)
        session.lang = lang
        screen = self.screener.screen(text, self._context(session), self._button_findings(session, inbound))

        turn = _Turn(session, lang)
        if screen.is_alarm:
            self._ensure_case(session).transcript.append(Turn(role="patient", text=text))
            self._alarm(turn, screen)
            if session.state is State.HANDOFF:
                self._relay(turn, inbound, text)
        elif not stored:
            self._say(turn, "error.temporary", purpose="error")
            return turn.out
        else:
            if text:
                self._record(turn, "patient", text)
            turn.model_reading = await self._model_reading(session, inbound, text, screen, lang)
            self._dispatch(turn, inbound, text, screen)
        if len(inbound.text) > MAX_TEXT_CHARS:
            turn.out.insert(0, self._reply(turn, "error.too_long"))
        await self._phrase(turn)
        await self._persist(turn, stored)
        return turn.out

    async def _model_reading(
        self, session: Session, inbound: Inbound, text: str, screen: ScreenResult, lang: Lang
    ) -> Value | None:
        """When the lexicon cannot read a free-text reply to the pending question, the model may
        (constrained JSON, validated here). Its reading fills only that unanswered question."""
        pending = session.pending
        if self.phraser is None or inbound.kind != "text" or pending.kind != "question" or not text.strip():
            return None
        question = self.rules.questions.get(pending.question_id or "")
        case = session.case
        if question is None or question.type is QuestionType.TEXT or case is None:
            return None
        if question.id in case.answers or read_reply(text, question, screen) is not None:
            return None
        request = ReadingRequest(
            question=question.ask.get(lang),
            kind=question.type.value,  # type: ignore[arg-type]
            lang=lang,
            patient_text=text,
            choices=tuple((c.id, c.text.get(lang)) for c in question.choices),
            unit=question.unit if question.quantity is Quantity.DURATION else None,
        )
        value = await self.phraser.read_answer(request, key=session.patient_id)
        allowed = question.allowed_values()
        if isinstance(allowed, tuple):
            return value if isinstance(value, str) and value in allowed else None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    async def _phrase(self, turn: _Turn) -> None:
        """Let the model reword questions and advice; the guard decides, the template is the
        fallback. Emergency, crisis, safety and consent texts are never handed to a model."""
        phraser = self.phraser
        if phraser is None or not turn.phrasable or not phraser.speaks(turn.lang):
            return
        for item in turn.phrasable:
            worded = await phraser.phrase(item.kind, turn.lang, item.segment, key=turn.session.patient_id)
            if not worded or worded.strip() == item.segment.strip():
                continue
            if not self.guard.check(worded, lang=turn.lang, level=item.level).accepted:
                continue
            index = next((i for i, action in enumerate(turn.out) if action is item.reply), None)
            if index is None:
                continue
            new_text = item.reply.text.replace(item.segment, worded.strip(), 1)
            turn.out[index] = item.reply.model_copy(update={"text": new_text})
            case = turn.session.case
            if case is not None:
                for position in range(len(case.transcript) - 1, -1, -1):
                    if (
                        case.transcript[position].role == "bot"
                        and case.transcript[position].text == item.reply.text
                    ):
                        case.transcript[position] = case.transcript[position].model_copy(
                            update={"text": new_text}
                        )
                        break

    # ---- safety ------------------------------------------------------------------------

    def _context(self, session: Session) -> ScreenContext:
        case = session.case
        if case is None:
            return ScreenContext()
        return ScreenContext(
            present=frozenset(case.present),
            age=case.numeric_age,
            sex=case.known_sex,
            max_temperature=case.max_temperature,
        )

    def _button_findings(self, session: Session, inbound: Inbound) -> frozenset[str]:
        """A "yes" button to a question about a concept is that finding, for the screen too.

        Red flags use strict `rf_<concept>` twins of broad protocol concepts so that loose words
        do not raise alarms (docs/protocol-format.md); a patient's explicit "yes" is not loose,
        so it confirms the strict twin as well.
        """
        parts = inbound.data.split(":")
        if inbound.kind != "button" or len(parts) != 3 or parts[0] != "a" or parts[2] != "yes":
            return frozenset()
        question = self.rules.questions.get(parts[1])
        if question is None or question.concept is None:
            return frozenset()
        strict = f"{STRICT_PREFIX}{question.concept}"
        return frozenset({question.concept} | ({strict} if strict in self.rules.lexicon.concepts else set()))

    def _alarm(self, turn: _Turn, screen: ScreenResult) -> None:
        session = turn.session
        case = self._ensure_case(session)
        new_flags = [flag for flag in screen.flags if flag.id not in case.red_flags]
        crisis = screen.outcome is Outcome.CRISIS
        self.casework.absorb(self._ensure_case(turn.session), screen)
        trigger = Trigger.CRISIS if crisis else Trigger.RED_FLAG
        if session.state is not State.HANDOFF:  # with a doctor in the chat, the doctor stays
            session.state = next_state(session.state, trigger)
        session.pending = Pending(kind="none")
        level = screen.level or Level.EMERGENCY
        lead = max(screen.flags, key=lambda flag: flag.level.rank)
        case.raise_alarm_level(level, f"redflag.{lead.id}")
        if case.protocols and case.who is not None:
            self.casework.next_decision(case)  # a protocol rule that already holds may be more urgent
        case.red_flags.extend(flag.id for flag in new_flags)
        case.crisis = case.crisis or crisis
        case.disposition = Disposition(
            level=case.level or level,
            rule=case.rule or f"redflag.{lead.id}",
            protocol=None,
            reason=lead.reason.get(turn.lang),
            red_flags=tuple(case.red_flags),
        )
        if crisis:
            text = (
                self.responder.crisis(screen, turn.lang)
                if new_flags
                else self.responder.crisis_followup(turn.lang)
            )
            self._mark_private(case)
        else:
            text = (
                self.responder.emergency(screen, turn.lang)
                if new_flags
                else self.responder.emergency_followup(turn.lang)
            )
        turn.out.append(
            Reply(
                text=text,
                lang=turn.lang,
                purpose="crisis" if crisis else "emergency",
                urgent=True,
                triage=TriageOutcome(
                    level=case.level or level,
                    rule=case.rule or "",
                    protocol=None,
                    red_flag=True,
                    flags=tuple(case.red_flags),
                ),
            )
        )
        self._record(turn, "bot", text, private=crisis)
        if new_flags:
            self._escalate(
                turn,
                "crisis" if crisis else "red_flag",
                priority=0,
                flags=tuple(flag.id for flag in new_flags),
            )

    def _ask_safety(self, turn: _Turn, flag: RedFlag) -> None:
        turn.session.pending = Pending(kind="safety", flag_id=flag.id)
        buttons = (
            Button(label=self.rules.text("answer.yes").get(turn.lang), data="safety:yes"),
            Button(label=self.rules.text("answer.no").get(turn.lang), data="safety:no"),
        )
        text = self.responder.safety_question(flag, turn.lang)
        expect = Expect(kind="safety", concept=flag.all[0])
        turn.out.append(Reply(text=text, lang=turn.lang, purpose="safety", buttons=buttons, expect=expect))
        self._record(turn, "bot", text)

    def _safety_answer(self, turn: _Turn, yes: bool | None) -> None:
        flag_id = turn.session.pending.flag_id
        flag = next((f for f in self.rules.red_flags.flags if f.id == flag_id), None)
        if yes is None or flag is None:
            self._reask(turn)
            return
        if yes:
            outcome = Outcome.CRISIS if flag.kind is FlagKind.CRISIS else Outcome.EMERGENCY
            self._alarm(turn, ScreenResult(outcome, "", flags=(flag,), present=frozenset(flag.all)))
            return
        turn.case.asked.append(f"safety:{flag.id}")
        turn.session.pending = Pending()
        if turn.session.state is State.ADVICE:
            self._say(turn, "after.advice")  # the advice stands; nothing more to ask
            return
        self._advance(turn)

    # ---- dispatch ----------------------------------------------------------------------

    def _dispatch(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        session = turn.session
        if inbound.kind == "command":
            self._command(turn, inbound)
            return
        if session.state is State.HANDOFF and inbound.kind in ("text", "media"):
            self._in_handoff(turn, inbound, text, screen)
            return
        if inbound.kind == "media":
            self._say(turn, "media.unsupported")
            if session.state not in (State.CONSENT, State.CLOSED):
                self._reask(turn)
            return
        if inbound.kind == "text" and not text.strip():
            self._say(turn, "error.empty")
            return
        if session.pending.kind == "forget":
            self._forget_answer(turn, inbound, text)
            return
        if session.state in (State.EMERGENCY, State.CRISIS):
            self._after_alarm(turn, inbound, text, screen)
            return
        if not session.consented:
            self._consent(turn, inbound, text)
            return
        if session.pending.kind == "safety":
            yes = _button_value(inbound, "safety")
            answer = yes if yes is not None else read_yes_no(normalise(text), None, screen)
            self._safety_answer(turn, None if answer in (None, "unsure") else answer == "yes")
            return
        flag = screen.ask_flag
        if flag is not None and f"safety:{flag.id}" not in (session.case.asked if session.case else []):
            if session.case is not None:
                self.casework.absorb(self._ensure_case(turn.session), screen)
            self._ask_safety(turn, flag)
            return
        handler = {
            State.EMERGENCY: self._after_alarm,
            State.CRISIS: self._after_alarm,
            State.HANDOFF: self._in_handoff,
            State.ADVICE: self._after_advice,
            State.CLOSED: self._closed,
        }.get(session.state, self._consulting)
        handler(turn, inbound, text, screen)

    def _command(self, turn: _Turn, inbound: Inbound) -> None:
        session = turn.session
        if session.state is State.HANDOFF and inbound.command in ("start", "restart", "human", "resume"):
            self._say(turn, "handoff.active")  # the doctor hands the patient back when done
            return
        match inbound.command:
            case "start":
                self._say(turn, "welcome")
                if session.consented:
                    self._new_case(turn, Trigger.RESTART)
                else:
                    session.state = (
                        next_state(session.state, Trigger.START)
                        if session.state in (State.CONSENT, State.CLOSED)
                        else State.CONSENT
                    )
                    self._ask_consent(turn)
            case "restart":
                if not session.consented:
                    self._ask_consent(turn)
                    return
                self._say(turn, "restart")
                self._new_case(turn, Trigger.RESTART)
            case "help":
                self._say(turn, "help")
            case "human":
                case = self._ensure_case(session)
                self._escalate(turn, "patient_request", priority=1, flags=tuple(case.red_flags))
                self._say(turn, "handoff.requested")
            case "forget":
                session.pending = Pending(kind="forget")
                turn.out.append(
                    self._reply(
                        turn,
                        "forget.confirm",
                        buttons=(
                            Button(label=self.rules.text("forget.yes").get(turn.lang), data="forget:yes"),
                            Button(label=self.rules.text("forget.no").get(turn.lang), data="forget:no"),
                        ),
                        expect=Expect(kind="forget"),
                    )
                )
            case "resume":
                if session.state in (State.CONSENT, State.CLOSED) and session.pending.kind != "consent":
                    self._say(turn, "welcome")
                self._reask(turn)
                if not turn.out:
                    self._say(turn, "after.advice" if session.state is State.ADVICE else "help")
            case "language":
                session.lang = turn.lang = "en" if turn.lang == "zh" else "zh"
                session.lang_fixed = True
                self._say(turn, "language.set")
                self._reask(turn)
            case _:
                self._say(turn, "help")

    # ---- consent -----------------------------------------------------------------------

    def _ask_consent(self, turn: _Turn) -> None:
        turn.session.pending = Pending(kind="consent")
        text = (
            self.rules.text("consent.text")
            .get(turn.lang)
            .format(number=self.region.emergency_number, retention_days=self.retention_days)
        )
        text += "\n\n" + self.responder.disclaimer(turn.lang)
        buttons = (
            Button(label=self.rules.text("consent.agree").get(turn.lang), data="consent:yes"),
            Button(label=self.rules.text("consent.decline").get(turn.lang), data="consent:no"),
        )
        turn.out.append(
            Reply(
                text=text, lang=turn.lang, purpose="consent", buttons=buttons, expect=Expect(kind="consent")
            )
        )

    def _consent(self, turn: _Turn, inbound: Inbound, text: str) -> None:
        session = turn.session
        choice = _button_value(inbound, "consent")
        if choice is None and text and agrees(text) and session.pending.kind == "consent":
            choice = "yes"
        if choice == "yes":
            session.consented = True
            session.state = next_state(session.state, Trigger.AGREED)
            self._new_case(turn, None)
            if session.held_text:
                held, session.held_text = session.held_text, None
                screen = self.screener.screen(held, self._context(session))
                self._record(turn, "patient", held)
                self.casework.absorb(self._ensure_case(turn.session), screen)
                if screen.findings or substantive(held):
                    turn.case.complaint = turn.case.complaint or held[:300]
            self._advance(turn)
        elif choice == "no":
            session.state = next_state(session.state, Trigger.DECLINED)
            session.held_text = None
            session.case = None
            session.pending = Pending()
            self._say(turn, "consent.declined")
        else:
            if text and session.state is State.CONSENT:
                session.held_text = ((session.held_text or "") + "\n" + text).strip()[:MAX_TEXT_CHARS]
            if session.pending.kind != "consent":
                self._say(turn, "welcome")
                self._ask_consent(turn)
            else:
                self._say(turn, "consent.needed")
                self._ask_consent(turn)

    def _closed(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        self._consent(turn, inbound, text)

    # ---- the consultation proper ---------------------------------------------------------

    def _new_case(self, turn: _Turn, trigger: Trigger | None) -> None:
        session = turn.session
        self.versions.switch_to_live()  # a new case starts on the live rules
        session.case = Case(
            case_id=uuid.uuid4().hex[:12], patient_id=session.patient_id, rules_version=self.rules.version
        )
        session.pending = Pending()
        if trigger is not None:
            session.state = next_state(session.state, trigger)
            self._advance(turn)

    def _ensure_case(self, session: Session) -> Case:
        if session.case is None:
            self.versions.switch_to_live()
            session.case = Case(
                case_id=uuid.uuid4().hex[:12], patient_id=session.patient_id, rules_version=self.rules.version
            )
        return session.case

    def _consulting(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        """Intake, complaint and follow-up: read the reply to what was asked, then advance."""
        session = turn.session
        case = self._ensure_case(session)
        pending = session.pending
        person = (case.age, case.sex)
        if inbound.kind == "button":
            if not self._button_answer(turn, inbound):
                self._say(turn, "answer.invalid")
                self._reask(turn)
                return
        else:
            before = (case.who, case.age, case.sex, case.complaint, dict(case.answers), list(case.protocols))
            self.casework.absorb(self._ensure_case(turn.session), screen)
            understood = self._text_answer(turn, text, screen)
            changed = before != (
                case.who,
                case.age,
                case.sex,
                case.complaint,
                dict(case.answers),
                list(case.protocols),
            )
            if not understood and not changed and pending.kind not in ("open", "complaint", "none"):
                if pending.attempts + 1 < MAX_ATTEMPTS:
                    session.pending = pending.model_copy(update={"attempts": pending.attempts + 1})
                    self._say(turn, "answer.invalid")
                    self._reask(turn)
                    return
                self._give_up_on_pending(turn)
        if (case.age, case.sex) != person and self._rescreen(turn):
            return
        self._advance(turn)

    def _rescreen(self, turn: _Turn) -> bool:
        """Age or sex just became known: flags bound to them may now hold (an infant's fever)."""
        case = turn.case
        screen = self.screener.screen("", self._context(turn.session), frozenset(case.present))
        if screen.is_alarm:
            self._alarm(turn, screen)
        return screen.is_alarm

    def _button_answer(self, turn: _Turn, inbound: Inbound) -> bool:
        case, session = turn.case, turn.session
        kind, _, value = inbound.data.partition(":")
        if kind == "who" and value in ("self", "child", "other") and case.who is None:
            case.who = value  # type: ignore[assignment]
            return True
        if kind == "sex" and value in ("M", "F", "unsure") and case.sex is None:
            case.sex = value  # type: ignore[assignment]
            return True
        if kind == "open" and value == "none" and session.pending.kind == "open":
            case.open_question_asked = True
            session.pending = Pending()
            return True
        if kind == "p" and value in self.rules.protocols and session.pending.kind == "complaint":
            case.protocols = [value]
            case.complaint = case.complaint or self.rules.protocols[value].title.get(turn.lang)
            return True
        if kind == "a":
            question_id, _, answer = value.partition(":")
            question = self.rules.questions.get(question_id)
            open_questions = {q.id for pid in case.protocols for q in self.rules.protocols[pid].questions}
            if question is None or question_id in case.answers or question_id not in open_questions:
                return False
            allowed = question.allowed_values()
            if isinstance(allowed, tuple) and answer not in allowed:
                return False
            if not isinstance(allowed, tuple) and answer != "unsure":
                return False
            self.casework.set_answer(case, question, answer)
            return True
        return False

    def _text_answer(self, turn: _Turn, text: str, screen: ScreenResult) -> bool:
        """Read a free-text reply as the answer to what is pending; True when it was read."""
        case, pending = turn.case, turn.session.pending
        normalised = normalise(text)
        if pending.kind == "who":
            who = read_who_reply(normalised) or screen.quantities.who
            if who:
                case.who = who  # type: ignore[assignment]
            return who is not None
        if pending.kind == "age":
            age = read_age_reply(text)
            if age is not None:
                case.age = age
            return age is not None
        if pending.kind == "sex":
            sex = read_sex_reply(normalised) or screen.quantities.sex
            if sex:
                case.sex = sex  # type: ignore[assignment]
            return sex is not None
        if pending.kind == "question" and pending.question_id:
            question = self.rules.questions[pending.question_id]
            if pending.question_id in case.answers:
                return True
            value = read_reply(text, question, screen)
            if value is None:
                value = turn.model_reading
            if value is not None:
                self.casework.set_answer(case, question, value)
            return value is not None
        if pending.kind == "open":
            case.open_question_asked = True
            if says_nothing_more(normalised):
                turn.session.pending = Pending()
            return True
        if pending.kind == "complaint" and (screen.findings or substantive(text)):
            case.complaint = case.complaint or text.strip()[:300]
        return pending.kind in ("complaint", "none")

    def _give_up_on_pending(self, turn: _Turn) -> None:
        """After repeated unreadable replies: record `unsure` and move on rather than loop."""
        case, pending = turn.case, turn.session.pending
        if pending.kind == "who":
            case.who = "self"
        elif pending.kind == "age":
            case.age = "unsure"
        elif pending.kind == "sex":
            case.sex = "unsure"
        elif pending.kind == "question" and pending.question_id:
            self.casework.set_answer(case, self.rules.questions[pending.question_id], "unsure")
        turn.session.pending = Pending()

    def _advance(self, turn: _Turn) -> None:
        """Ask the next thing the case needs, or give the advice."""
        case = self._ensure_case(turn.session)
        if case.who is None:
            self._ask_intake(turn, "who")
            return
        if case.age is None:
            self._ask_intake(turn, "age")
            return
        if case.sex is None:
            self._ask_intake(turn, "sex")
            return
        if not case.protocols:
            self.casework.refresh_protocols(case)
        if not case.protocols:
            self._ask_complaint(turn)
            return
        decision = self.casework.next_decision(case)
        if decision is not None and decision.next_question is not None:
            self._ask_question(turn, decision.next_question)
            return
        if (case.level or Level.SELF_CARE) < Level.EMERGENCY and self._wants_open_question(turn):
            self._ask_open(turn)
            return
        self._give_advice(turn)

    def _wants_open_question(self, turn: _Turn) -> bool:
        case, pending = turn.case, turn.session.pending
        rounds = sum(1 for t in case.transcript if t.role == "bot" and t.text == self._open_text(turn))
        if rounds >= MAX_OPEN_ROUNDS:
            return False
        if not case.open_question_asked:
            return True
        return pending.kind == "open"  # they added something last time: ask once more

    def _open_text(self, turn: _Turn) -> str:
        return self.rules.text("open.ask").get(turn.lang)

    # ---- asking ------------------------------------------------------------------------

    def _ask_intake(self, turn: _Turn, item: str) -> None:
        session, lang = turn.session, turn.lang
        session.pending = Pending(
            kind=item,
            attempts=session.pending.attempts if session.pending.kind == item else 0,
        )
        session.state = (
            next_state(session.state, Trigger.INTAKE_INCOMPLETE)
            if session.state is State.INTAKE
            else session.state
        )
        t = self.rules.text
        if item == "who":
            buttons = tuple(
                Button(label=t(f"intake.who_{w}").get(lang), data=f"who:{w}")
                for w in ("self", "child", "other")
            )
            self._ask(turn, t("intake.who").get(lang), buttons, Expect(kind="who"))
        elif item == "age":
            key = "intake.age" if turn.case.who == "self" else "intake.age_child"
            self._ask(turn, t(key).get(lang), (), Expect(kind="age"))
        else:
            buttons = (
                Button(label=t("intake.sex_m").get(lang), data="sex:M"),
                Button(label=t("intake.sex_f").get(lang), data="sex:F"),
                Button(label=t("intake.sex_unsure").get(lang), data="sex:unsure"),
            )
            self._ask(turn, t("intake.sex").get(lang), buttons, Expect(kind="sex"))

    def _ask_complaint(self, turn: _Turn) -> None:
        session, case = turn.session, turn.case
        if session.state is State.INTAKE:
            session.state = next_state(session.state, Trigger.INTAKE_DONE)
        elif session.state is State.COMPLAINT:
            session.state = next_state(session.state, Trigger.COMPLAINT_UNCLEAR)
        if case.complaint is None and session.pending.kind != "complaint":
            session.pending = Pending(kind="complaint")
            self._ask(turn, self.rules.text("complaint.ask").get(turn.lang), (), Expect(kind="complaint"))
            return
        case.unclear_attempts += 1
        fallback = self.rules.fallback
        if case.unclear_attempts >= MAX_ATTEMPTS and fallback is not None:
            case.protocols = [fallback.id]
            self._escalate(turn, "low_confidence", priority=3, flags=())
            session.state = next_state(session.state, Trigger.COMPLAINT_KNOWN)
            self._advance(turn)
            return
        session.pending = Pending(kind="complaint")
        menu = sorted(
            (
                p
                for p in self.rules.protocols.values()
                if not p.fallback and p.population.admits(case.numeric_age, case.known_sex)
            ),
            key=lambda p: (-p.match.rank, p.id),
        )[:8]
        buttons = tuple(Button(label=p.title.get(turn.lang), data=f"p:{p.id}") for p in menu)
        text = self.rules.text("complaint.again").get(turn.lang)
        if buttons:
            text += "\n" + self.rules.text("complaint.menu").get(turn.lang)
        self._ask(turn, text, buttons, Expect(kind="complaint"))

    def _ask_question(self, turn: _Turn, question: Question) -> None:
        session, case = turn.session, turn.case
        if session.state in (State.INTAKE, State.COMPLAINT):
            session.state = next_state(session.state, Trigger.COMPLAINT_KNOWN)
        else:
            session.state = next_state(session.state, Trigger.QUESTION)
        attempts = session.pending.attempts if session.pending.question_id == question.id else 0
        session.pending = Pending(kind="question", question_id=question.id, attempts=attempts)
        if question.id not in case.asked:
            case.asked.append(question.id)
        expect = Expect(
            kind="question",
            question_id=question.id,
            concept=question.concept,
            question_type=question.type.value,
            quantity=question.quantity.value if question.quantity else None,
            unit=question.unit,
            choices=tuple(c.id for c in question.choices),
        )
        self._ask(
            turn, question.ask.get(turn.lang), question_buttons(question, self.rules, turn.lang), expect
        )

    def _ask_open(self, turn: _Turn) -> None:
        session = turn.session
        session.state = (
            next_state(session.state, Trigger.QUESTION) if session.state is State.FOLLOWUP else session.state
        )
        session.pending = Pending(kind="open")
        turn.case.open_question_asked = True
        button = Button(label=self.rules.text("open.nothing").get(turn.lang), data="open:none")
        self._ask(turn, self._open_text(turn), (button,), Expect(kind="open"))

    def _ask(self, turn: _Turn, text: str, buttons: tuple[Button, ...], expect: Expect) -> None:
        reply = Reply(text=text, lang=turn.lang, purpose="question", buttons=buttons, expect=expect)
        turn.out.append(reply)
        if expect.kind == "question" and "question" in self.phrase_kinds:
            # a question is asked because the level is not decided yet: the guard then refuses
            # reassurance as well as escalation-free "no need to see anyone" in its rewording
            turn.phrasable.append(_Phrasable(reply, text, "question", None))
        self._record(turn, "bot", text)

    def _reask(self, turn: _Turn) -> None:
        """Repeat whatever is pending (after a hint, a language switch, a photo)."""
        session = turn.session
        if session.pending.kind == "consent" or not session.consented:
            self._ask_consent(turn)
        elif session.state in (State.INTAKE, State.COMPLAINT, State.FOLLOWUP):
            if session.pending.kind == "complaint":
                session.pending = Pending()
            self._advance(turn)

    # ---- advice ------------------------------------------------------------------------

    def _give_advice(self, turn: _Turn) -> None:
        session, case = turn.session, turn.case
        decision = self.casework.next_decision(case)
        level = case.level or Level.SELF_CARE
        protocol_id = (case.rule or "").split(".")[0]
        protocol: Protocol | None = self.rules.protocols.get(protocol_id)
        rule = _find_rule(protocol, case.rule)
        reason = (
            rule.reason.get(turn.lang) if rule else (decision.rule.reason.get(turn.lang) if decision else "")
        )
        others = [
            self.rules.protocols[p].title.get(turn.lang)
            for p in case.protocols[: MAX_OTHERS_NAMED + 1]
            if p != protocol_id and p not in case.done_protocols
        ]
        text = advice_text(
            rules=self.rules,
            responder=self.responder,
            protocol=protocol,
            level=level,
            reason=reason,
            others=others,
            lang=turn.lang,
            unsure=unconfirmed_signs(protocol, case.answers, level) if protocol is not None else (),
        )
        read = dict(decision.read) if decision and decision.rule_id == case.rule else {}
        case.disposition = Disposition(
            level=level,
            rule=case.rule or "",
            protocol=protocol_id or None,
            reason=reason,
            read=read,
            red_flags=tuple(case.red_flags),
        )
        session.state = next_state(session.state, Trigger.TRIAGED)
        session.pending = Pending()
        reply = Reply(
            text=text,
            lang=turn.lang,
            purpose="advice",
            urgent=level >= Level.EMERGENCY,
            triage=TriageOutcome(
                level=level,
                rule=case.rule or "",
                protocol=protocol_id or None,
                red_flag=bool(case.red_flags),
                flags=tuple(case.red_flags),
            ),
        )
        turn.out.append(reply)
        if (
            "advice" in self.phrase_kinds
            and protocol is not None
            and level in protocol.advice
            and level < Level.EMERGENCY
        ):
            # only the protocol's advice body: level, reasons, safety net and disclaimer stay as written
            body = protocol.advice[level].get(turn.lang).strip()
            turn.phrasable.append(_Phrasable(reply, body, "advice", level))
        self._record(turn, "bot", text)
        if level >= self.escalate_at:
            self._escalate(turn, "level", priority=1 if level >= Level.EMERGENCY else 2, flags=())

    def _after_advice(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        case = turn.case
        opened = matching_protocols(
            self.rules.protocols.values(), screen.present, case.numeric_age, case.known_sex
        )
        if text and any(p.id not in case.protocols for p in opened):
            turn.session.state = next_state(turn.session.state, Trigger.NEW_COMPLAINT)
            self._new_case(turn, None)
            self._record(turn, "patient", text)
            self.casework.absorb(self._ensure_case(turn.session), self.screener.screen(text))
            self._advance(turn)
            return
        self._say(turn, "after.advice")

    def _after_alarm(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        if turn.session.case is not None:
            self.casework.absorb(self._ensure_case(turn.session), screen)
        if turn.session.state is State.CRISIS:
            reply = self.responder.crisis_followup(turn.lang)
            turn.out.append(Reply(text=reply, lang=turn.lang, purpose="crisis"))
            self._record(turn, "bot", reply, private=True)
            self._mark_private(turn.case)
        else:
            self._say(turn, "emergency.continue", purpose="emergency")

    def _in_handoff(self, turn: _Turn, inbound: Inbound, text: str, screen: ScreenResult) -> None:
        """A doctor has the case: the bot stays quiet and passes the message on to the team."""
        if turn.session.case is not None:
            self.casework.absorb(self._ensure_case(turn.session), screen)
        if inbound.kind == "media":
            self._record(turn, "patient", f"[{inbound.media or 'media'}]")
        self._relay(turn, inbound, text)

    def _relay(self, turn: _Turn, inbound: Inbound, text: str) -> None:
        case = self._ensure_case(turn.session)
        media = inbound.media if inbound.kind == "media" else None
        turn.out.append(Relay(case_id=case.case_id, patient_id=case.patient_id, text=text, media=media))

    # ---- the doctor team -----------------------------------------------------------------

    async def doctor_joined(self, patient_id: str, doctor: str) -> list[Outbound]:
        """A doctor claimed the patient's case: from now on the patient talks to them."""
        return await self._doctor_turn(patient_id, "joined", doctor, "")

    async def doctor_says(self, patient_id: str, doctor: str, text: str) -> list[Outbound]:
        """A doctor's message for the patient (recorded in the case, sent as theirs)."""
        return await self._doctor_turn(patient_id, "says", doctor, text)

    async def doctor_left(self, patient_id: str, doctor: str) -> list[Outbound]:
        """The doctor closed the case: the bot takes the patient back."""
        return await self._doctor_turn(patient_id, "left", doctor, "")

    async def _doctor_turn(self, patient_id: str, what: str, doctor: str, text: str) -> list[Outbound]:
        async with self._one_at_a_time(patient_id):
            session = await self.store.load(patient_id)  # StoreUnavailableError: the caller retries
            if session is None and patient_id in self._unsaved_alarms:  # flagged while storage was down
                session = Session(patient_id=patient_id)
            if session is None:  # forgotten
                return []
            self._restore_unsaved_alarm(session)
            token = self.versions.enter(self.versions.for_session(session))
            try:
                return await self._doctor_step(session, what, doctor, text)
            finally:
                self.versions.leave(token)

    async def _doctor_step(self, session: Session, what: str, doctor: str, text: str) -> list[Outbound]:
        turn = _Turn(session, session.lang or self.default_lang)
        self._ensure_case(session)
        if what == "says":
            turn.out.append(Reply(text=f"{doctor}: {text}", lang=turn.lang, purpose="doctor"))
            self._record(turn, "doctor", text)
        elif what == "joined":
            if session.state is not State.HANDOFF:
                session.state = next_state(session.state, Trigger.DOCTOR_CLAIMED)
                session.pending = Pending()
            self._say_doctor(turn, "handoff.joined", doctor)
        elif session.state is State.HANDOFF:
            session.state = next_state(session.state, Trigger.DOCTOR_CLOSED)
            session.pending = Pending()
            self._say_doctor(turn, "handoff.closed", doctor)
        await self.store.save(session)
        return turn.out

    def _say_doctor(self, turn: _Turn, key: str, doctor: str) -> None:
        text = self.rules.text(key).get(turn.lang).format(doctor=doctor, number=self.region.emergency_number)
        turn.out.append(Reply(text=text, lang=turn.lang, purpose="doctor"))
        self._record(turn, "system", text)

    # ---- forgetting ----------------------------------------------------------------------

    def _forget_answer(self, turn: _Turn, inbound: Inbound, text: str) -> None:
        choice = _button_value(inbound, "forget")
        if choice is None and text:
            answer = read_yes_no(normalise(text), None, self.screener.screen(""))
            choice = {"yes": "yes", "no": "no"}.get(str(answer))
        if choice == "yes":
            turn.session.pending = Pending(kind="none", flag_id="forget-confirmed")
            turn.session.state = next_state(turn.session.state, Trigger.FORGOTTEN)
            self._say(turn, "forget.done")
        else:
            turn.session.pending = Pending()
            self._say(turn, "forget.kept")
            self._reask(turn)

    # ---- output helpers ------------------------------------------------------------------

    def _reply(
        self,
        turn: _Turn,
        key: str,
        *,
        purpose: str = "info",
        buttons: tuple[Button, ...] = (),
        expect: Expect | None = None,
    ) -> Reply:
        text = self.rules.text(key).get(turn.lang).format(number=self.region.emergency_number)
        return Reply(
            text=text,
            lang=turn.lang,
            purpose=purpose,
            buttons=buttons,
            expect=expect or Expect(kind="none"),
        )

    def _say(self, turn: _Turn, key: str, *, purpose: str = "info") -> None:
        reply = self._reply(turn, key, purpose=purpose)
        turn.out.append(reply)
        if turn.session.case is not None:
            self._record(turn, "bot", reply.text)

    def _record(self, turn: _Turn, role: str, text: str, *, private: bool = False) -> None:
        case = turn.session.case
        alarmed = case is not None and (bool(case.red_flags) or case.crisis)
        if case is None or (role == "patient" and not turn.session.consented and not alarmed):
            return
        case.transcript.append(Turn(role=role, text=text, private=private))

    def _mark_private(self, case: Case) -> None:
        """The crisis turn (and the message that triggered it) never reaches a model."""
        for index in range(len(case.transcript) - 1, -1, -1):
            turn = case.transcript[index]
            if turn.private:
                continue
            case.transcript[index] = turn.model_copy(update={"private": True})
            if turn.role == "patient":
                break

    def _escalate(self, turn: _Turn, reason: str, *, priority: int, flags: tuple[str, ...]) -> None:
        case = self._ensure_case(turn.session)
        key = f"{reason}:{','.join(flags)}" if flags else reason
        if key in case.escalated:
            return
        case.escalated.append(key)
        turn.out.append(
            Escalation(
                case_id=case.case_id,
                patient_id=case.patient_id,
                reason=reason,
                priority=priority,
                level=case.level,
                flags=flags or tuple(case.red_flags),
            )
        )

    async def _persist(self, turn: _Turn, stored: bool) -> None:
        session = turn.session
        forget = session.pending.flag_id == "forget-confirmed"
        saved = False
        try:
            if forget:
                self._unsaved_alarms.pop(session.patient_id, None)
                await self.store.forget(session.patient_id)
                return
            for action in turn.out:
                if isinstance(action, Escalation):
                    await self.store.escalate(action)
            if stored:
                await self.store.save(session)
                saved = True
        except StoreUnavailableError:
            log.warning("storage unavailable: turn for %s not saved", _alias(session.patient_id))
        alarmed = any(isinstance(a, Reply) and a.purpose in ("emergency", "crisis") for a in turn.out)
        if not saved and alarmed and session.case is not None:
            self._remember_unsaved_alarm(session.case)

    def _remember_unsaved_alarm(self, case: Case) -> None:
        """An emergency or crisis answered while storage was down: keep its facts in memory, to
        be written into the patient's stored case on their next turn (this process only)."""
        if len(self._unsaved_alarms) >= MAX_UNSAVED_ALARMS:
            self._unsaved_alarms.pop(next(iter(self._unsaved_alarms)))
        earlier = self._unsaved_alarms.pop(case.patient_id, None)
        if earlier is not None:
            case.transcript[:0] = earlier.transcript
            case.red_flags[:0] = [flag for flag in earlier.red_flags if flag not in case.red_flags]
            case.crisis = case.crisis or earlier.crisis
        self._unsaved_alarms[case.patient_id] = case.model_copy(deep=True)

    def _restore_unsaved_alarm(self, session: Session) -> None:
        unsaved = self._unsaved_alarms.pop(session.patient_id, None)
        if unsaved is None:
            return
        case = self._ensure_case(session)
        case.transcript.extend(unsaved.transcript)
        case.transcript.sort(key=lambda turn: turn.at)
        case.red_flags.extend(flag for flag in unsaved.red_flags if flag not in case.red_flags)
        case.present.extend(concept for concept in unsaved.present if concept not in case.present)
        case.escalated.extend(key for key in unsaved.escalated if key not in case.escalated)
        case.crisis = case.crisis or unsaved.crisis
        if unsaved.level is not None:
            case.raise_alarm_level(unsaved.level, unsaved.rule or "")
        if case.disposition is None or (
            unsaved.disposition and unsaved.disposition.level > case.disposition.level
        ):
            case.disposition = unsaved.disposition
        if session.state is not State.HANDOFF:
            session.state = State.CRISIS if unsaved.crisis else State.EMERGENCY
            session.pending = Pending(kind="none")

    def _language(self, session: Session, text: str, hint: str | None) -> Lang:
        if session.lang_fixed and session.lang:
            return session.lang
        detected = detect_language(text) if decisive(text) else None
        if detected:
            return detected
        if session.lang:
            return session.lang
        if hint:
            return "zh" if hint.lower().startswith("zh") else "en"
        return self.default_lang


def _button_value(inbound: Inbound, kind: str) -> str | None:
    if inbound.kind != "button":
        return None
    prefix, _, value = inbound.data.partition(":")
    return value if prefix == kind and value in ("yes", "no") else None


def _find_rule(protocol: Protocol | None, full_id: str | None) -> Rule | None:
    if protocol is None or not full_id:
        return None
    rule_id = full_id.split(".", 1)[-1]
    return next((rule for rule in protocol.rules if rule.id == rule_id), None)


def _alias(patient_id: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, patient_id).hex[:8]
