"""The Telegram frontend's pure parts: updates read as Inbound events, replies laid out for a
phone, its settings and its locale texts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiogram.types import Update
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import cli
from bot.config import ConfigError, load_settings
from bot.telegram.inbound import callback_inbound, message_inbound
from bot.telegram.render import MESSAGE_LIMIT, keyboard, split_text, utf16_len
from bot.telegram.runner import webhook_path, webhook_secret
from bot.telegram.texts import TELEGRAM_TEXT_KEYS, language_of
from dialog.events import Button
from dialog.ruleset import RuleSet
from tests.telegram_fixtures import updates


def _message(update: dict[str, object]) -> Update:
    return Update.model_validate(update)


def test_text_commands_media_and_captions_become_inbound_events() -> None:
    text = _message(updates.message(5, "I have a fever", lang="zh-hans"))
    assert text.message is not None
    inbound = message_inbound(text.message, text.update_id)
    assert inbound is not None
    assert (inbound.patient_id, inbound.kind, inbound.text) == ("tg:5", "text", "I have a fever")
    assert (inbound.lang_hint, inbound.update_id) == ("zh-hans", text.update_id)

    for raw, command in [("/start", "start"), ("/Forget@wenzhen_bot", "forget"), ("/nope x", "help")]:
        update = _message(updates.message(5, raw))
        assert update.message is not None
        got = message_inbound(update.message, 1)
        assert got is not None
        assert (got.kind, got.command) == ("command", command)

    for kind in ("voice", "sticker", "document", "location", "video"):
        update = _message(updates.media(5, kind))
        assert update.message is not None
        got = message_inbound(update.message, 1)
        assert got is not None
        assert (got.kind, got.media) == ("media", kind)

    captioned = _message(updates.photo(5, caption="rash on the arm"))
    assert captioned.message is not None
    got = message_inbound(captioned.message, 1)
    assert got is not None
    assert (got.kind, got.text) == ("text", "rash on the arm")

    tap = _message(updates.tap(5, "a:stiff_neck:yes", message_id=3))
    assert tap.callback_query is not None
    got = callback_inbound(tap.callback_query, tap.update_id)
    assert (got.kind, got.data, got.patient_id) == ("button", "a:stiff_neck:yes", "tg:5")


def test_languages_follow_the_telegram_client() -> None:
    assert language_of("zh-hans", "en") == "zh"
    assert language_of("en-US", "zh") == "en"
    assert language_of("de", "zh") == "en"
    assert language_of(None, "zh") == "zh"


def test_a_short_text_is_one_message_and_blank_is_none() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("  \n ") == []


def test_long_texts_break_at_paragraphs_then_sentences() -> None:
    paragraphs = ["a" * 3000, "b" * 3000]
    assert split_text("\n\n".join(paragraphs)) == paragraphs
    chinese = "发烧了请多喝水。" * 1000
    parts = split_text(chinese)
    assert all(part.endswith("。") for part in parts)
    assert "".join(parts) == chinese


@given(st.text(min_size=0, max_size=12000))
def test_every_part_fits_and_nothing_is_lost(text: str) -> None:
    parts = split_text(text, limit=500)
    assert all(0 < utf16_len(part) <= 500 for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_emoji_count_twice_towards_the_limit() -> None:
    parts = split_text("🚑" * 3000)
    assert all(utf16_len(part) <= MESSAGE_LIMIT for part in parts)
    assert len(parts) == 2


def _labels(buttons: list[str]) -> list[list[str]]:
    markup = keyboard([Button(label=label, data=f"x:{n}") for n, label in enumerate(buttons)])
    assert markup is not None
    return [[b.text for b in row] for row in markup.inline_keyboard]


def test_keyboards_are_compact_for_short_answers_and_one_per_row_for_long_ones() -> None:
    assert keyboard([]) is None
    assert _labels(["Yes", "No", "Not sure"]) == [["Yes", "No", "Not sure"]]
    assert _labels(["是", "否", "不确定"]) == [["是", "否", "不确定"]]
    assert _labels(["Male", "Female", "Prefer not to say"]) == [["Male", "Female"], ["Prefer not to say"]]
    long = ["Less than usual, much less", "As usual", "Hardly drinking anything at all"]
    assert _labels(long) == [[label] for label in long]


def test_settings_for_telegram_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        telegram_bot_token="123:abc",
        telegram_webhook_url="https://bot.example.org/tg/hook",
        telegram_throttle_rate=2,
    )
    assert webhook_path(settings) == "/tg/hook"
    secret = webhook_secret(settings)
    assert secret == webhook_secret(load_settings(telegram_bot_token="123:abc"))  # every process agrees
    assert secret != webhook_secret(load_settings(telegram_bot_token="123:abd"))
    assert webhook_secret(load_settings(telegram_webhook_secret="s3cret_-")) == "s3cret_-"
    with pytest.raises(ConfigError, match="WENZHEN_TELEGRAM_WEBHOOK_SECRET"):
        load_settings(telegram_webhook_secret="no spaces allowed")
    with pytest.raises(ConfigError, match="WENZHEN_TELEGRAM_WEBHOOK_URL"):
        load_settings(telegram_webhook_url="bot.example.org")
    monkeypatch.setenv("WENZHEN_TELEGRAM_THROTTLE_BURST", "0")
    with pytest.raises(ConfigError, match="WENZHEN_TELEGRAM_THROTTLE_BURST"):
        load_settings()


def test_the_shipped_locales_have_every_telegram_text(rules: RuleSet) -> None:
    for key in TELEGRAM_TEXT_KEYS:
        text = rules.text(key)
        assert text.en, key
        assert text.zh, key
    assert rules.text("telegram.throttled").zh != rules.text("telegram.throttled").en


def test_serve_explains_a_missing_or_malformed_token(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"TELEGRAM_BOT_TOKEN": None, "WENZHEN_CONFIG": str(tmp_path / "none.toml")}
    result = runner.invoke(cli, ["serve"], env=env)
    assert result.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in result.output
    result = runner.invoke(cli, ["serve"], env={**env, "TELEGRAM_BOT_TOKEN": "not a token"})
    assert result.exit_code == 1
    assert "not a bot token" in result.output


def test_the_frontend_reaches_the_engine_only_through_the_service() -> None:
    package = Path(__file__).resolve().parent.parent / "bot" / "telegram"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        engine = {m for m in modules if m.split(".")[0] in ("dialog", "safety", "storage", "model")}
        allowed = {"dialog.service", "dialog.events", "dialog.ruleset", "safety", "storage.redis_store"}
        # the team side works on the team's own domain (tickets, the board), not the engine; the
        # wiring records rules versions and reads the model queue's health
        allowed |= {"dialog.team", "dialog.session", "dialog.store", "storage.team_board"}
        allowed |= {"storage.rules_history", "model.queue"}
        assert engine <= allowed, (path.name, engine - allowed)
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "service"
            and node.attr.startswith("_")
        ]
        assert not private, (path.name, private)
