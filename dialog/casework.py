"""What a case knows and where its triage stands: findings and facts taken from the patient's
words, answers, the protocols the complaint opens, and the level they give.

Pure: the service calls it with a case and the screen of a message; no I/O, no frontends.
"""

from __future__ import annotations

from dialog.conditions import Value
from dialog.protocol import Protocol, Question
from dialog.ruleset import RuleSet
from dialog.session import Case
from dialog.triage import Decision, decide
from dialog.understand import answers_from_text, matching_protocols
from safety import Screener, ScreenResult

CHILD_AGE = 16.0  # under 16 the child protocols apply (NICE NG143 and IMCI populations)


class Casework:
    def __init__(self, rules: RuleSet, screener: Screener) -> None:
        self.rules = rules
        self.screener = screener

    def set_answer(self, case: Case, question: Question, value: Value, *, from_text: bool = False) -> None:
        case.answers[question.id] = value
        if from_text:
            case.answered_from_text.append(question.id)
        if question.concept and value == "yes" and question.concept not in case.present:
            case.present.append(question.concept)

    def absorb(self, case: Case, screen: ScreenResult) -> None:
        """Take everything a message states into the case: findings, who, age, sex, complaint,
        protocols it opens, and answers to questions not asked yet."""
        for concept in sorted(screen.present):
            if concept not in case.present:
                case.present.append(concept)
        quantities = screen.quantities
        if quantities.temperature_c is not None:
            case.max_temperature = max(case.max_temperature or 0.0, quantities.temperature_c)
        if case.who is None and quantities.who is not None:
            case.who = quantities.who
        if case.age is None and quantities.age_years is not None:
            case.age = quantities.age_years
        if case.sex is None and quantities.sex is not None and case.who in (None, "child", "other"):
            case.sex = quantities.sex
        if case.who is None and case.numeric_age is not None and case.numeric_age < CHILD_AGE:
            case.who = "child"
        opened = matching_protocols(
            self.rules.protocols.values(), frozenset(case.present), case.numeric_age, case.known_sex
        )
        if opened and case.complaint is None:
            case.complaint = screen.text[:300]
        for protocol in opened:
            if protocol.id not in case.protocols:
                case.protocols.append(protocol.id)
        questions = [q for pid in case.protocols for q in self.rules.protocols[pid].questions]
        # a question answered "not sure" is still open to what the patient writes later
        stated = {qid: value for qid, value in case.answers.items() if value != "unsure"}
        for question_id, value in answers_from_text(screen, questions, stated).items():
            if value == "unsure":
                continue
            if question_id in case.answers:
                case.restated = True
            self.set_answer(case, self.rules.questions[question_id], value, from_text=True)

    def refresh_protocols(self, case: Case) -> None:
        """Intake facts (age, sex) decide which protocols apply: match again once they are known."""
        opened = matching_protocols(
            self.rules.protocols.values(), frozenset(case.present), case.numeric_age, case.known_sex
        )
        case.protocols = [p.id for p in opened]

    def next_decision(self, case: Case) -> Decision | None:
        """The most dangerous complaint's protocol asks the questions; the others mentioned are
        kept (named in the advice) and raise the level only through rules that already hold."""
        self._drop_misfits(case)
        if not case.protocols:
            return None
        if case.restated:
            case.decide_afresh()
        case.protocols.sort(key=lambda pid: (-self.rules.protocols[pid].match.rank, pid))
        facts = case.facts()
        primary = self.rules.protocols[case.protocols[0]]
        decision = decide(primary, facts)
        case.raise_level(decision.level, decision.rule_id)
        for protocol_id in case.protocols[1:]:
            protocol = self.rules.protocols[protocol_id]
            for rule in protocol.rules:
                if not rule.is_baseline and rule.condition.evaluate(facts) is True:
                    case.raise_level(rule.level, protocol.full_rule_id(rule))
        if decision.settled and primary.id not in case.done_protocols:
            case.done_protocols.append(primary.id)
        return decision

    def _drop_misfits(self, case: Case) -> None:
        """A protocol opened before the age was known may not fit the patient; swap it."""
        fitting = [
            pid
            for pid in case.protocols
            if self.rules.protocols[pid].population.admits(case.numeric_age, case.known_sex)
        ]
        if len(fitting) != len(case.protocols):
            opened = matching_protocols(
                self.rules.protocols.values(), frozenset(case.present), case.numeric_age, case.known_sex
            )
            case.protocols = list(dict.fromkeys(fitting + [p.id for p in opened]))
            for protocol_id in case.protocols:
                if protocol_id not in fitting:
                    self._answer_from_transcript(case, self.rules.protocols[protocol_id])

    def _answer_from_transcript(self, case: Case, protocol: Protocol) -> None:
        """A protocol that joins late reads what the patient already wrote, like the others did."""
        for turn in case.transcript:
            if turn.role != "patient" or turn.private:
                continue
            screen = self.screener.screen(turn.text)
            for question_id, value in answers_from_text(screen, protocol.questions, case.answers).items():
                self.set_answer(case, self.rules.questions[question_id], value, from_text=True)
