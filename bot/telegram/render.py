"""Replies laid out for a phone: texts cut to Telegram's message limit, quick replies as an inline
keyboard (short answers side by side, long labels one per row)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from dialog.events import Button

MESSAGE_LIMIT = 4096  # Telegram's limit, counted here in UTF-16 code units (the stricter reading)
_ROW_WIDTHS = ((3, 10), (2, 18))  # (buttons per row, widest label that fits), on a phone screen
_BREAKS = ("\n\n", "\n", "。", ". ", "！", "？", "; ", "；", " ", "，", ", ")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut a text into messages of at most `limit`, at paragraph, line, sentence or word breaks
    where possible. Blank texts give no message (Telegram refuses them)."""
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            chunks.append(rest)
            break
        cut = _fitting_prefix(rest, limit)
        window = rest[:cut]
        for separator in _BREAKS:
            at = window.rfind(separator)
            if at > cut // 2:
                cut = at + len(separator)
                break
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [chunk for chunk in chunks if chunk]


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest number of characters of `text` within `limit` UTF-16 code units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def label_width(label: str) -> int:
    """Roughly how many Latin letters wide a label is (Chinese characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in label)


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    widest = max(label_width(button.label) for button in buttons)
    per_row = next((count for count, width in _ROW_WIDTHS if widest <= width), 1)
    builder = InlineKeyboardBuilder()
    for button in buttons:
        builder.button(text=button.label, callback_data=button.data)
    builder.adjust(per_row)
    return builder.as_markup()
