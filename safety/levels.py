"""The five triage levels and the three classes they fall into."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """Triage levels, declared from least to most urgent."""

    SELF_CARE = "self_care"
    CONSULTATION = "consultation"
    CONSULTATION_24 = "consultation_24"
    EMERGENCY = "emergency"
    EMERGENCY_AMBULANCE = "emergency_ambulance"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def triage_class(self) -> TriageClass:
        return _CLASS[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank


class TriageClass(StrEnum):
    """The Semigran classes: coarser than levels, used by benchmarks."""

    SELF_CARE = "self_care"
    NON_EMERGENCY = "non_emergency"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return list(TriageClass).index(self)


_RANK = {level: index for index, level in enumerate(Level)}
_CLASS = {
    Level.SELF_CARE: TriageClass.SELF_CARE,
    Level.CONSULTATION: TriageClass.NON_EMERGENCY,
    Level.CONSULTATION_24: TriageClass.NON_EMERGENCY,
    Level.EMERGENCY: TriageClass.EMERGENCY,
    Level.EMERGENCY_AMBULANCE: TriageClass.EMERGENCY,
}


def most_urgent(levels: list[Level]) -> Level | None:
    return max(levels, key=lambda level: level.rank, default=None)
