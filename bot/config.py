"""Settings: environment variables and an optional TOML file, validated at start.

TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE and REDIS_URL keep their usual names; everything else is
WENZHEN_* (e.g. WENZHEN_DATA_DIR, WENZHEN_REGION, WENZHEN_MODEL). The TOML file is
$WENZHEN_CONFIG, or ./wenzhen.toml when present; environment variables win over it.
"""

from __future__ import annotations

import os
import re
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
from dialog.team import Roster, Team
from safety import REGIONS, Level, Region


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "wenzhen"


def _default_rule_cases() -> list[Path]:
    checkout = Path(__file__).resolve().parent.parent / "cases"
    return [folder for folder in (checkout / "library", checkout / "safety") if folder.is_dir()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WENZHEN_", extra="forbid", populate_by_name=True)

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "telegram_bot_token")
    )
    telegram_api_base: str | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_API_BASE", "telegram_api_base")
    )
    redis_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    redis_max_connections: int = Field(default=1000, ge=2, le=100_000)  # per process; more wait their turn

    data_dir: Path = Field(default_factory=_default_data_dir)
    rules_dir: Path = RULES_DIR
    rules_watch: bool = True  # `serve`: reload the rules when their files change (validated and tested first)
    # the regression suite a rules edit must pass before it goes live (default: the checkout's
    # case library and safety sets, when present)
    rules_cases: list[Path] = Field(default_factory=lambda: _default_rule_cases())
    region: Literal["cn", "us", "uk", "eu"] = "cn"
    language: Literal["zh", "en"] = "zh"
    model: str = "bundled"
    model_name: str | None = None
    model_api_key: SecretStr | None = None
    model_threads: int | None = Field(default=None, ge=1, le=256)  # default: leave a core to the event loop
    model_context: int = Field(default=4096, ge=512, le=262144)
    model_gpu_layers: int = Field(default=0, ge=-1)
    # where a GGUF model generates: its own child process (the bot's event loop never waits for the
    # GIL behind llama-cpp-python's token loop), or a worker thread of the bot's process
    model_process: Literal["child", "thread"] = "child"
    model_phrase_seconds: float = Field(default=8.0, gt=0, le=120)
    # what the model may reword; default: advice only for the bundled 135M model (its rewordings
    # of questions can change their meaning), questions and advice for any other model
    model_phrase: Literal["all", "advice", "none"] | None = None

    @property
    def phrase_kinds(self) -> frozenset[Literal["question", "advice"]]:
        choice = self.model_phrase or ("advice" if self.model == "bundled" else "all")
        return {
            "all": frozenset({"question", "advice"}),
            "advice": frozenset({"advice"}),
            "none": frozenset(),
        }[choice]  # type: ignore[return-value]

    # How long records are kept, per kind (storage/redis_store.py, storage/team_board.py):
    # sessions, case records and flagged cases' tickets `retention_days` after their last change;
    # the escalation stream's entries `retention_escalations_days`; a case's audit trail
    # `retention_audit_days` after its last entry. /forget removes all of them at once.
    retention_days: int = Field(default=30, ge=1, le=3650)
    retention_escalations_days: int = Field(default=30, ge=1, le=3650)
    retention_audit_days: int = Field(default=365, ge=1, le=3650)
    escalate_at: Level = Level.EMERGENCY
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] | None = None  # default: json for `serve`, text elsewhere
    # /metrics, /healthz and /readyz (bot/telegram/health.py): on the webhook's port in webhook
    # mode, else on this address; port 0 serves none in polling mode
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)

    # Telegram (bot/telegram): webhook mode when telegram_webhook_url is set, else long polling.
    telegram_webhook_url: str | None = None  # the public https:// URL Telegram posts updates to
    telegram_webhook_path: str | None = None  # path served locally; default: the URL's path
    telegram_webhook_host: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8081, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = None  # default: derived from the bot token
    telegram_request_timeout: float = Field(default=20.0, gt=0, le=300)  # seconds per Bot API call
    telegram_throttle_rate: float = Field(default=1.0, gt=0)  # messages per second per patient
    telegram_throttle_burst: int = Field(default=6, ge=1)  # messages a patient may send at once
    telegram_typing_after: float = Field(default=0.5, ge=0)  # seconds before "typing…" is shown
    telegram_lock_timeout: float = Field(default=30.0, ge=1)  # per-patient lock TTL (renewed while held)
    telegram_urgent_retry_for: float = Field(default=600.0, ge=10)  # seconds to retry an emergency reply

    # The doctor team (dialog/team.py): teams with their forum supergroup, members and routing,
    # best written in the TOML file as [[teams]] tables.
    teams: list[Team] = Field(default_factory=list)
    team_realert_minutes: float = Field(default=5.0, gt=0)  # unclaimed emergency/crisis cases
    team_sbar: bool = True  # ask the model for an SBAR summary on each flagged case's card

    # The dashboard (dashboard/): `wenzhen dashboard`, or alongside `wenzhen serve`.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8080, ge=1, le=65535)
    dashboard_with_serve: bool = False  # `wenzhen serve` also serves the dashboard
    dashboard_public_url: str | None = None  # for login links, e.g. https://team.example.org
    dashboard_secure_cookies: bool = False  # set when the dashboard is served over https

    @property
    def roster(self) -> Roster:
        return Roster(teams=tuple(self.teams))

    @field_validator("teams")
    @classmethod
    def _roster_is_consistent(cls, value: list[Team]) -> list[Team]:
        Roster(teams=tuple(value))  # unique names, member ids and Telegram ids
        return value

    @field_validator("model")
    @classmethod
    def _model_choice(cls, value: str) -> str:
        if value in ("bundled", "none") or value.startswith(("http://", "https://")):
            return value
        if value.endswith(".gguf"):
            return value
        raise ValueError("must be `bundled`, `none`, a path to a .gguf file, or an http(s):// URL")

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL (Telegram itself posts only to https://)")
        return value

    @field_validator("telegram_webhook_path")
    @classmethod
    def _webhook_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("1-256 characters: letters, digits, _ and - (Telegram's rule)")
        return value

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
