"""The rules versions a running service consults on, and which one a turn uses.

Operators reload the rules while consultations are running; a consultation finishes on the
version it started with (DESIGN: the decision is auditable against the case's recorded version).
`RuleVersions` keeps the live engine and the recent ones; the service sets the turn's engine in a
context variable, so concurrent turns on different versions never see each other's rules.
"""

from __future__ import annotations

from collections import OrderedDict
from contextvars import ContextVar, Token
from dataclasses import dataclass

from dialog.casework import Casework
from dialog.ruleset import RuleSet
from dialog.session import Session
from safety import Localized, Region, Responder, Screener

KEPT_VERSIONS = 8  # rules versions kept for consultations still running on them


@dataclass(frozen=True, slots=True)
class Engine:
    """Everything a consultation reads from one version of the rules."""

    rules: RuleSet
    screener: Screener
    casework: Casework
    responder: Responder

    @classmethod
    def build(cls, rules: RuleSet, region: Region) -> Engine:
        screener = Screener(rules.lexicon, rules.red_flags)
        return cls(
            rules,
            screener,
            Casework(rules, screener),
            Responder(safety_texts(rules), region, rules.red_flags.first_aid),
        )


class RuleVersions:
    def __init__(self, rules: RuleSet, region: Region) -> None:
        self.region = region
        self.live = Engine.build(rules, region)
        self._kept: OrderedDict[str, Engine] = OrderedDict({rules.version: self.live})
        self._turn: ContextVar[Engine | None] = ContextVar(f"wenzhen_engine_{id(self)}", default=None)

    @property
    def current(self) -> Engine:
        """The engine of the turn in hand, else the live one."""
        return self._turn.get() or self.live

    def use(self, rules: RuleSet) -> None:
        """Make `rules` live; keep the last `KEPT_VERSIONS` for consultations running on them."""
        engine = self._kept.get(rules.version) or Engine.build(rules, self.region)
        self._kept[rules.version] = engine
        self._kept.move_to_end(rules.version)
        self.live = engine
        while len(self._kept) > KEPT_VERSIONS:
            self._kept.popitem(last=False)

    def for_session(self, session: Session) -> Engine:
        """The version the session's case started on, if still kept, else the live one."""
        case = session.case
        if case is None:
            return self.live
        return self._kept.get(case.rules_version, self.live)

    def enter(self, engine: Engine | None) -> Token[Engine | None]:
        """Use `engine` for the rest of this turn (task); returns a token for `leave`."""
        return self._turn.set(engine)

    def switch_to_live(self) -> None:
        """A new case starts within the turn: from here on the turn uses the live rules."""
        self._turn.set(self.live)

    def leave(self, token: Token[Engine | None]) -> None:
        self._turn.reset(token)


def safety_texts(rules: RuleSet) -> dict[str, Localized]:
    return {
        key.removeprefix("safety."): value for key, value in rules.texts.items() if key.startswith("safety.")
    }
