"""Bilingual text as it appears in every operator-edited file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from safety.text import Lang

LANGS: tuple[Lang, ...] = ("en", "zh")


class Localized(BaseModel):
    """A text in English and Simplified Chinese; both are required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def get(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class Source(BaseModel):
    """A public document a rule rests on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str = Field(min_length=3)
    url: str | None = None
