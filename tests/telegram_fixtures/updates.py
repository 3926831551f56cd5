"""Telegram updates as a patient's client would produce them (JSON-ready dicts)."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

# Telegram's ids do not start at 1 either; a random start keeps a rerun on a persistent Redis
# (REDIS_URL) clear of the update ids the last run marked as handled (bot/telegram/dedupe.py).
_ids = itertools.count(random.randint(1, 2**30))


def next_id() -> int:
    return next(_ids)


def _user(user_id: int, lang: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Patient"}
    if lang:
        user["language_code"] = lang
    return user


def _chat(chat_id: int, chat_type: str) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type != "private":
        chat["title"] = "A group"
    return chat


def message(
    user_id: int,
    text: str | None = None,
    *,
    lang: str | None = "en",
    chat_type: str = "private",
    chat_id: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": next_id(),
        "date": int(time.time()),
        "chat": _chat(chat_id if chat_id is not None else user_id, chat_type),
        "from": _user(user_id, lang),
    }
    if text is not None:
        body["text"] = text
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    body.update(extra or {})
    return {"update_id": next_id(), "message": body}


def photo(user_id: int, caption: str | None = None, *, lang: str | None = "en") -> dict[str, Any]:
    extra: dict[str, Any] = {
        "photo": [{"file_id": "AgAD", "file_unique_id": "u1", "width": 90, "height": 90}]
    }
    if caption:
        extra["caption"] = caption
    return message(user_id, lang=lang, extra=extra)


def media(user_id: int, kind: str, *, lang: str | None = "en") -> dict[str, Any]:
    payloads: dict[str, dict[str, Any]] = {
        "voice": {"voice": {"file_id": "v", "file_unique_id": "v1", "duration": 3}},
        "sticker": {
            "sticker": {
                "file_id": "s",
                "file_unique_id": "s1",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        },
        "document": {"document": {"file_id": "d", "file_unique_id": "d1", "file_name": "scan.pdf"}},
        "location": {"location": {"latitude": 31.23, "longitude": 121.47}},
        "video": {"video": {"file_id": "m", "file_unique_id": "m1", "width": 1, "height": 1, "duration": 1}},
    }
    return message(user_id, lang=lang, extra=payloads[kind])


def tap(
    user_id: int,
    data: str,
    *,
    message_id: int,
    lang: str | None = "en",
    chat_type: str = "private",
    chat_id: int | None = None,
    keyboard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": _chat(chat_id if chat_id is not None else user_id, chat_type),
        "from": {"id": 42, "is_bot": True, "first_name": "wenzhen"},
        "text": "...",
    }
    if keyboard is not None:
        shown["reply_markup"] = keyboard
    return {
        "update_id": next_id(),
        "callback_query": {
            "id": str(next_id()),
            "from": _user(user_id, lang),
            "chat_instance": "ci",
            "data": data,
            "message": shown,
        },
    }
