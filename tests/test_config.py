"""Settings from the environment and a TOML file; bad values name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.telegram_bot_token is None
    assert settings.redis_url is None
    assert settings.region == "cn"
    assert settings.region_config.emergency_number == "120"
    assert settings.model == "bundled"


def test_toml_file_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "wz.toml"
    config.write_text('region = "uk"\nretention_days = 7\nlanguage = "en"\n', encoding="utf-8")
    monkeypatch.setenv("WENZHEN_CONFIG", str(config))
    monkeypatch.setenv("WENZHEN_RETENTION_DAYS", "14")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret-token")
    settings = load_settings()
    assert settings.region == "uk"
    assert settings.language == "en"
    assert settings.retention_days == 14  # the environment wins over the file
    assert settings.telegram_bot_token is not None
    assert "secret-token" not in repr(settings)
    assert settings.telegram_bot_token.get_secret_value() == "123:secret-token"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WENZHEN_REGION", "atlantis"),
        ("WENZHEN_RETENTION_DAYS", "-1"),
        ("WENZHEN_MODEL", "gpt-9"),
        ("WENZHEN_RULES_DIR", "/nonexistent"),
        ("WENZHEN_ESCALATE_AT", "soon"),
    ],
)
def test_a_bad_value_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_model_choices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for value in ("none", "bundled", "/models/x.gguf", "http://127.0.0.1:8080/v1"):
        monkeypatch.setenv("WENZHEN_MODEL", value)
        assert load_settings().model == value


def test_the_bundled_model_rewords_only_advice_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().phrase_kinds == frozenset({"advice"})
    monkeypatch.setenv("WENZHEN_MODEL", "http://127.0.0.1:8080/v1")
    assert load_settings().phrase_kinds == frozenset({"question", "advice"})
    monkeypatch.setenv("WENZHEN_MODEL_PHRASE", "none")
    assert load_settings().phrase_kinds == frozenset()
