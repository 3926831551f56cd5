"""A rules directory loaded as one validated, versioned, immutable RuleSet.

A directory that does not validate raises DataFileError listing every problem with file and
line; the caller keeps whatever RuleSet it had (fail closed on safety data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialog.protocol import LexiconFile, Protocol, Question, protocol_problems
from safety import DataError, DataFileError, Lexicon, Localized, RedFlagSet
from safety.datafile import load_yaml, validate
from safety.redflags import load_red_flags
from safety.responses import SAFETY_TEXT_KEYS
from safety.text import normalise_term

DIALOG_TEXT_KEYS = (
    "welcome",
    "consent.text",
    "consent.agree",
    "consent.decline",
    "consent.declined",
    "consent.needed",
    "intake.who",
    "intake.who_self",
    "intake.who_child",
    "intake.who_other",
    "intake.age",
    "intake.age_child",
    "intake.age_invalid",
    "intake.sex",
    "intake.sex_m",
    "intake.sex_f",
    "intake.sex_unsure",
    "complaint.ask",
    "complaint.again",
    "complaint.menu",
    "answer.yes",
    "answer.no",
    "answer.unsure",
    "answer.unknown_number",
    "answer.invalid",
    "open.ask",
    "open.nothing",
    "advice.heading",
    "advice.because",
    "advice.watch",
    "advice.unsure",
    "advice.unsure_item",
    "advice.also",
    "advice.closing",
    "level.emergency_ambulance",
    "level.emergency",
    "level.consultation_24",
    "level.consultation",
    "level.self_care",
    "after.advice",
    "emergency.continue",
    "handoff.requested",
    "handoff.joined",
    "handoff.closed",
    "handoff.active",
    "help",
    "restart",
    "forget.confirm",
    "forget.yes",
    "forget.no",
    "forget.done",
    "forget.kept",
    "media.unsupported",
    "error.temporary",
    "error.empty",
    "error.too_long",
    "language.set",
)


@dataclass(frozen=True)
class RuleSet:
    directory: Path
    version: str
    protocols: Mapping[str, Protocol]
    lexicon: Lexicon
    red_flags: RedFlagSet
    texts: Mapping[str, Localized]
    questions: Mapping[str, Question]
    warnings: tuple[DataError, ...] = field(default=())

    def text(self, key: str) -> Localized:
        return self.texts[key]

    @property
    def fallback(self) -> Protocol | None:
        return next((p for p in self.protocols.values() if p.fallback), None)


def rules_version(directory: Path) -> str:
    """A short content hash of every data file: equal files, equal version."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.yaml")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def load_rules(directory: Path) -> RuleSet:
    errors: list[DataError] = []
    warnings: list[DataError] = []

    lexicon_terms: dict[str, list[str]] = {}
    lexicon_langs: dict[str, set[str]] = {}
    for path in sorted((directory / "lexicon").glob("*.yaml")):
        try:
            document = load_yaml(path)
            parsed = validate(document, LexiconFile)
        except DataFileError as exc:
            errors.extend(exc.errors)
            continue
        for concept, by_lang in parsed.concepts.items():
            for lang, terms in by_lang.items():
                lexicon_terms.setdefault(concept, []).extend(terms)
                if terms:
                    lexicon_langs.setdefault(concept, set()).add(lang)
            for lang, terms in by_lang.items():
                for index, term in enumerate(terms):
                    if not normalise_term(term.replace("...", "").replace("*", "")).strip():
                        errors.append(
                            document.error(
                                ("concepts", concept, lang, index), f"concept {concept}: empty term"
                            )
                        )
    try:
        lexicon = Lexicon({c: _unique(terms) for c, terms in lexicon_terms.items()})
    except ValueError as exc:
        errors.append(DataError(str(directory / "lexicon"), None, str(exc)))
        lexicon = Lexicon({})
    for concept, langs in sorted(lexicon_langs.items()):
        for lang in ("en", "zh"):
            if lang not in langs:
                warnings.append(
                    DataError(
                        str(directory / "lexicon"), None, f"concept {concept} has no {lang} terms", "warning"
                    )
                )

    protocols: dict[str, Protocol] = {}
    questions: dict[str, tuple[Question, str]] = {}
    for path in sorted((directory / "protocols").glob("*.yaml")):
        try:
            document = load_yaml(path)
            protocol = validate(document, Protocol)
        except DataFileError as exc:
            errors.extend(exc.errors)
            continue
        problems = protocol_problems(protocol)
        errors.extend(document.error(loc, problem) for loc, problem in problems)
        if problems:
            continue
        if protocol.id != path.stem:
            errors.append(
                document.error(("id",), f"id {protocol.id!r} must equal the file name {path.stem!r}")
            )
        for concept in sorted(protocol.concepts() - lexicon.concepts):
            errors.append(
                document.error(
                    _concept_loc(document.data, concept),
                    f"unknown concept {concept!r} (not in any lexicon file)",
                )
            )
        for index, question in enumerate(protocol.questions):
            earlier = questions.get(question.id)
            if earlier and not earlier[0].same_definition(question):
                errors.append(
                    document.error(
                        ("questions", index),
                        f"question {question.id} differs from its definition in {earlier[1]}",
                    )
                )
            questions.setdefault(question.id, (question, path.name))
        warnings.extend(_protocol_warnings(protocol, document))
        protocols[protocol.id] = protocol
    if not any(p.fallback for p in protocols.values()):
        warnings.append(
            DataError(
                str(directory / "protocols"), None, "no fallback protocol (`fallback: true`)", "warning"
            )
        )

    try:
        red_flags = load_red_flags((directory / "redflags").glob("*.yaml"), lexicon.concepts)
    except DataFileError as exc:
        errors.extend(exc.errors)
        red_flags = RedFlagSet(flags=(), first_aid={}, sources={})

    texts = _load_texts(directory / "locales", errors)

    if errors:
        raise DataFileError(errors)
    return RuleSet(
        directory=directory,
        version=rules_version(directory),
        protocols=protocols,
        lexicon=lexicon,
        red_flags=red_flags,
        texts=texts,
        questions={qid: pair[0] for qid, pair in questions.items()},
        warnings=tuple(warnings),
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _concept_loc(data: Any, concept: str) -> tuple[str | int, ...]:
    if isinstance(data, dict):
        for index, question in enumerate(data.get("questions") or []):
            if isinstance(question, dict) and question.get("concept") == concept:
                return ("questions", index, "concept")
    return ("match",)


def _protocol_warnings(protocol: Protocol, document: Any) -> list[DataError]:
    found: list[DataError] = []
    baseline = max(r.level for r in protocol.rules if r.is_baseline)
    for index, rule in enumerate(protocol.rules):
        if not rule.is_baseline and rule.level <= baseline:
            found.append(
                document.error(
                    ("rules", index),
                    f"rule {rule.id} can never change the level: the baseline is already {baseline.value}",
                    "warning",
                )
            )
    used = set().union(*(rule.condition.variables() for rule in protocol.rules))
    used |= set().union(*(q.gate.variables() for q in protocol.questions))
    for index, question in enumerate(protocol.questions):
        if question.id not in used:
            found.append(
                document.error(("questions", index), f"question {question.id} is used by no rule", "warning")
            )
    for index, source in enumerate(protocol.sources):
        if not source.url:
            found.append(document.error(("sources", index), f"source {source.id} has no url", "warning"))
    return found


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(data, str):
        flat[prefix.rstrip(".")] = data
    return flat


def _load_texts(directory: Path, errors: list[DataError]) -> dict[str, Localized]:
    by_lang: dict[str, dict[str, str]] = {}
    for lang in ("en", "zh"):
        path = directory / f"{lang}.yaml"
        if not path.exists():
            errors.append(DataError(str(path), None, "locale file is missing"))
            continue
        try:
            by_lang[lang] = _flatten(load_yaml(path).data)
        except DataFileError as exc:
            errors.extend(exc.errors)
    if len(by_lang) < 2:
        return {}
    texts: dict[str, Localized] = {}
    for key in sorted(set(by_lang["en"]) | set(by_lang["zh"])):
        missing = [lang for lang in ("en", "zh") if key not in by_lang[lang]]
        if missing:
            errors.append(
                DataError(
                    str(directory / f"{missing[0]}.yaml"),
                    None,
                    f"text {key!r} is missing (missing translation)",
                )
            )
            continue
        texts[key] = Localized(en=by_lang["en"][key], zh=by_lang["zh"][key])
    for key in (*(f"safety.{k}" for k in SAFETY_TEXT_KEYS), *DIALOG_TEXT_KEYS):
        if key not in texts and not any(key in lang_texts for lang_texts in by_lang.values()):
            errors.append(DataError(str(directory), None, f"text {key!r} is missing"))
    return texts
