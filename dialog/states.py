"""Consultation states (DESIGN.md) and the one table of transitions between them.

Handlers decide *what happened* (a Trigger); this table alone decides *where that leads*. A
trigger the table does not list for a state is a programming error, raised as such.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    CONSENT = "consent"
    INTAKE = "intake"
    COMPLAINT = "complaint"
    FOLLOWUP = "followup"
    ADVICE = "advice"
    CLOSED = "closed"
    EMERGENCY = "emergency"
    CRISIS = "crisis"
    HANDOFF = "handoff"


class Trigger(StrEnum):
    START = "start"  # /start or a first message
    AGREED = "agreed"  # consent given
    DECLINED = "declined"  # consent refused
    INTAKE_INCOMPLETE = "intake_incomplete"
    INTAKE_DONE = "intake_done"  # who, age and sex known; no complaint yet
    COMPLAINT_KNOWN = "complaint_known"  # a protocol is running
    COMPLAINT_UNCLEAR = "complaint_unclear"
    QUESTION = "question"  # another follow-up question (or the open question)
    TRIAGED = "triaged"  # a disposition was given
    NEW_COMPLAINT = "new_complaint"  # after advice: a new case
    RESTART = "restart"
    RED_FLAG = "red_flag"
    CRISIS = "crisis"
    CONTINUE = "continue"  # stay where you are (a reply that changes nothing)
    DOCTOR_CLAIMED = "doctor_claimed"
    DOCTOR_CLOSED = "doctor_closed"
    FORGOTTEN = "forgotten"
    UNREACHABLE = "unreachable"  # the patient blocked the bot


_ANYWHERE = {
    Trigger.RED_FLAG: State.EMERGENCY,
    Trigger.CRISIS: State.CRISIS,
    Trigger.RESTART: State.INTAKE,
    Trigger.FORGOTTEN: State.CONSENT,
    Trigger.DOCTOR_CLAIMED: State.HANDOFF,
    Trigger.UNREACHABLE: State.CLOSED,
}

TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.CONSENT, Trigger.START): State.CONSENT,
    (State.CONSENT, Trigger.CONTINUE): State.CONSENT,
    (State.CONSENT, Trigger.AGREED): State.INTAKE,
    (State.CONSENT, Trigger.DECLINED): State.CLOSED,
    (State.INTAKE, Trigger.INTAKE_INCOMPLETE): State.INTAKE,
    (State.INTAKE, Trigger.INTAKE_DONE): State.COMPLAINT,
    (State.INTAKE, Trigger.COMPLAINT_KNOWN): State.FOLLOWUP,
    (State.INTAKE, Trigger.TRIAGED): State.ADVICE,
    (State.INTAKE, Trigger.CONTINUE): State.INTAKE,
    (State.COMPLAINT, Trigger.COMPLAINT_KNOWN): State.FOLLOWUP,
    (State.COMPLAINT, Trigger.COMPLAINT_UNCLEAR): State.COMPLAINT,
    (State.COMPLAINT, Trigger.TRIAGED): State.ADVICE,
    (State.COMPLAINT, Trigger.CONTINUE): State.COMPLAINT,
    (State.FOLLOWUP, Trigger.QUESTION): State.FOLLOWUP,
    (State.FOLLOWUP, Trigger.TRIAGED): State.ADVICE,
    (State.FOLLOWUP, Trigger.CONTINUE): State.FOLLOWUP,
    (State.ADVICE, Trigger.NEW_COMPLAINT): State.INTAKE,
    (State.ADVICE, Trigger.CONTINUE): State.ADVICE,
    (State.CLOSED, Trigger.START): State.CONSENT,
    (State.CLOSED, Trigger.AGREED): State.INTAKE,
    (State.CLOSED, Trigger.DECLINED): State.CLOSED,
    (State.CLOSED, Trigger.CONTINUE): State.CLOSED,
    (State.EMERGENCY, Trigger.CONTINUE): State.EMERGENCY,
    (State.CRISIS, Trigger.CONTINUE): State.CRISIS,
    (State.HANDOFF, Trigger.CONTINUE): State.HANDOFF,
    (State.HANDOFF, Trigger.DOCTOR_CLOSED): State.ADVICE,
}


class TransitionError(RuntimeError):
    pass


def next_state(state: State, trigger: Trigger) -> State:
    """The state `trigger` leads to from `state`, per the table above."""
    if (state, trigger) in TRANSITIONS:
        return TRANSITIONS[(state, trigger)]
    if trigger in _ANYWHERE:
        return _ANYWHERE[trigger]
    raise TransitionError(f"no transition from {state.value} on {trigger.value}")
