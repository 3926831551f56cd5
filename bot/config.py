"""Settings: environment variables and an optional TOML file, validated at start.

TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE and REDIS_URL keep their usual names; everything else is
WENZHEN_* (e.g. WENZHEN_DATA_DIR, WENZHEN_REGION, WENZHEN_MODEL). The TOML file is
$WENZHEN_CONFIG, or ./wenzhen.toml when present; environment variables win over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from clinical import RULES_DIR
from safety import REGIONS, Level, Region


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "wenzhen"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WENZHEN_", extra="forbid", populate_by_name=True)

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "telegram_bot_token")
    )
    telegram_api_base: str | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_API_BASE", "telegram_api_base")
    )
    redis_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))

    data_dir: Path = Field(default_factory=_default_data_dir)
    rules_dir: Path = RULES_DIR
    region: Literal["cn", "us", "uk", "eu"] = "cn"
    language: Literal["zh", "en"] = "zh"
    model: str = "bundled"
    model_name: str | None = None
    model_api_key: SecretStr | None = None
    retention_days: int = Field(default=30, ge=1, le=3650)
    escalate_at: Level = Level.EMERGENCY
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("model")
    @classmethod
    def _model_choice(cls, value: str) -> str:
        if value in ("bundled", "none") or value.startswith(("http://", "https://")):
            return value
        if value.endswith(".gguf"):
            return value
        raise ValueError("must be `bundled`, `none`, a path to a .gguf file, or an http(s):// URL")

    @field_validator("rules_dir")
    @classmethod
    def _rules_exist(cls, value: Path) -> Path:
        if not (value / "protocols").is_dir():
            raise ValueError(f"{value} has no protocols/ folder")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("WENZHEN_CONFIG") or "wenzhen.toml"
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    @property
    def region_config(self) -> Region:
        return REGIONS[self.region]


class ConfigError(Exception):
    """A setting is invalid; the message names it and says why."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            env = (
                name.upper()
                if name.upper() in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE", "REDIS_URL")
                else f"WENZHEN_{name.upper()}"
            )
            lines.append(f"{env}: {str(error['msg']).removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
