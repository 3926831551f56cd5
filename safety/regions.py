"""Emergency and crisis numbers per region (DESIGN.md: China 120 and 12356; US 911 and 988;
EU 112; UK 999 and 111). Deployments override them through settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from safety.i18n import Localized


class CrisisLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Localized
    number: str
    can_text: bool = False


class Region(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    emergency_number: str
    crisis_lines: tuple[CrisisLine, ...]
    urgent_advice_number: str | None = None  # e.g. NHS 111

    @property
    def numbers(self) -> frozenset[str]:
        """Every phone number the bot may say in this region (the output guard allows these)."""
        found = {self.emergency_number, *(line.number for line in self.crisis_lines)}
        if self.urgent_advice_number:
            found.add(self.urgent_advice_number)
        return frozenset(found)


REGIONS: dict[str, Region] = {
    "cn": Region(
        code="cn",
        emergency_number="120",
        crisis_lines=(
            CrisisLine(
                name=Localized(en="the national mental-health hotline", zh="全国心理援助热线"), number="12356"
            ),
            CrisisLine(
                name=Localized(
                    en="the Beijing Psychological Crisis Intervention Center", zh="北京心理危机研究与干预中心"
                ),
                number="010-82951332",
            ),
        ),
    ),
    "us": Region(
        code="us",
        emergency_number="911",
        crisis_lines=(
            CrisisLine(
                name=Localized(en="the 988 Suicide & Crisis Lifeline", zh="988 自杀与危机生命线"),
                number="988",
                can_text=True,
            ),
        ),
    ),
    "uk": Region(
        code="uk",
        emergency_number="999",
        urgent_advice_number="111",
        crisis_lines=(CrisisLine(name=Localized(en="Samaritans", zh="撒玛利亚会"), number="116 123"),),
    ),
    "eu": Region(
        code="eu",
        emergency_number="112",
        crisis_lines=(
            CrisisLine(name=Localized(en="the emotional support line", zh="情绪支持热线"), number="116 123"),
        ),
    ),
}
