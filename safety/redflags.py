"""Red-flag files: the schema, loading and validation of clinical/redflags/*.yaml."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safety.datafile import DataError, DataFileError, load_yaml, validate
from safety.i18n import Localized, Source
from safety.levels import Level

_ID = r"^[a-z][a-z0-9_]*$"


class FlagKind(StrEnum):
    EMERGENCY = "emergency"
    CRISIS = "crisis"


class Population(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_age: float | None = Field(default=None, ge=0)
    max_age: float | None = Field(default=None, gt=0)
    sex: Literal["M", "F"] | None = None

    def admits(self, age: float | None, sex: str | None) -> bool:
        """Unknown age or sex never excludes: a flag must not be missed for want of intake."""
        if age is not None:
            if self.min_age is not None and age < self.min_age:
                return False
            if self.max_age is not None and age >= self.max_age:
                return False
        return not (sex is not None and self.sex is not None and sex != self.sex)


class RedFlag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    kind: FlagKind
    level: Literal[Level.EMERGENCY_AMBULANCE, Level.EMERGENCY]
    all: tuple[str, ...] = Field(min_length=1)
    any: tuple[str, ...] = ()
    population: Population = Population()
    if_negated: Literal["ignore", "ask"] = "ignore"
    if_historical: Literal["ignore", "ask"] = "ignore"
    ask: Localized | None = None
    first_aid: tuple[str, ...] = ()
    reason: Localized
    source: str

    @model_validator(mode="after")
    def _ask_needs_question(self) -> RedFlag:
        if "ask" in (self.if_negated, self.if_historical) and self.ask is None:
            raise ValueError("`ask` text is required when if_negated or if_historical is `ask`")
        return self

    @property
    def concepts(self) -> frozenset[str]:
        return frozenset(self.all) | frozenset(self.any)


class FirstAid(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Localized
    source: str


class RedFlagFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: tuple[Source, ...] = ()
    flags: tuple[RedFlag, ...] = ()
    first_aid: dict[str, FirstAid] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sources_resolve(self) -> RedFlagFile:
        known = {source.id for source in self.sources}
        for flag in self.flags:
            if flag.source not in known:
                raise ValueError(f"flag {flag.id}: source {flag.source!r} is not in `sources`")
        for aid_id, aid in self.first_aid.items():
            if aid.source not in known:
                raise ValueError(f"first_aid {aid_id}: source {aid.source!r} is not in `sources`")
        return self


class RedFlagSet(BaseModel):
    """Every red flag and first-aid text of a rules directory, checked against the lexicon."""

    model_config = ConfigDict(frozen=True)

    flags: tuple[RedFlag, ...]
    first_aid: dict[str, FirstAid]
    sources: dict[str, Source]


def load_red_flags(paths: Iterable[Path], concepts: frozenset[str]) -> RedFlagSet:
    """Load red-flag files; every concept and first-aid id must resolve, ids must be unique."""
    errors: list[DataError] = []
    flags: list[RedFlag] = []
    first_aid: dict[str, FirstAid] = {}
    sources: dict[str, Source] = {}
    located: list[tuple[RedFlag, DataError]] = []
    for path in sorted(paths):
        try:
            document = load_yaml(path)
            parsed = validate(document, RedFlagFile)
        except DataFileError as exc:
            errors.extend(exc.errors)
            continue
        for index, flag in enumerate(parsed.flags):
            flags.append(flag)
            located.append((flag, document.error(("flags", index), "")))
        for aid_id, aid in parsed.first_aid.items():
            if aid_id in first_aid:
                errors.append(document.error(("first_aid", aid_id), f"first_aid {aid_id} is defined twice"))
            first_aid[aid_id] = aid
        sources.update({source.id: source for source in parsed.sources})
    seen: set[str] = set()
    for flag, where in located:
        problems = []
        if flag.id in seen:
            problems.append(f"flag id {flag.id} is used twice")
        seen.add(flag.id)
        problems += [
            f"flag {flag.id}: unknown concept {c!r} (not in any lexicon file)"
            for c in sorted(flag.concepts - concepts)
        ]
        problems += [f"flag {flag.id}: unknown first_aid {a!r}" for a in flag.first_aid if a not in first_aid]
        errors.extend(DataError(where.file, where.line, problem) for problem in problems)
    if errors:
        raise DataFileError(errors)
    return RedFlagSet(flags=tuple(flags), first_aid=first_aid, sources=sources)
