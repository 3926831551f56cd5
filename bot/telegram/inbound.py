"""Telegram updates as `Inbound` events: text, taps, commands and media, from private chats.

Pure functions of aiogram objects; no I/O. A media message with a caption is read as text, so
the words a patient writes under a photo are screened and understood like any message.
"""

from __future__ import annotations

from typing import get_args

from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message, User

from dialog.events import Command, Inbound, MediaKind

_COMMANDS: dict[str, Command] = {name: name for name in get_args(Command) if name != "resume"}
_MEDIA: dict[str, MediaKind] = {
    ContentType.PHOTO: "photo",
    ContentType.VOICE: "voice",
    ContentType.AUDIO: "voice",
    ContentType.STICKER: "sticker",
    ContentType.DOCUMENT: "document",
    ContentType.LOCATION: "location",
    ContentType.VENUE: "location",
    ContentType.VIDEO: "video",
    ContentType.VIDEO_NOTE: "video",
    ContentType.ANIMATION: "video",
    ContentType.CONTACT: "other",
    ContentType.POLL: "other",
    ContentType.DICE: "other",
    ContentType.STORY: "other",
    ContentType.PAID_MEDIA: "other",
}


def patient_id(user: User) -> str:
    return f"tg:{user.id}"


def command_name(message: Message) -> str | None:
    """`/start`, `/Help@wenzhen_bot payload` ... as a command name; None if not a command."""
    text = message.text or ""
    entities = message.entities or []
    if not text.startswith("/") or not any(e.type == "bot_command" and e.offset == 0 for e in entities):
        return None
    words = text[1:].split(maxsplit=1)
    if not words:  # a lone "/" (a client may still mark it as a command): plain text
        return None
    return words[0].split("@", 1)[0].lower()


def message_inbound(message: Message, update_id: int | None) -> Inbound | None:
    """The event a patient's message is, or None for messages that say nothing to us
    (service messages such as a pinned message)."""
    user = message.from_user
    if user is None:
        return None
    pid, hint = patient_id(user), user.language_code
    command = command_name(message)
    if command is not None:
        # An unknown command gets the help text: the patient is looking for one that exists.
        known = _COMMANDS.get(command, "help")
        return Inbound(patient_id=pid, kind="command", command=known, lang_hint=hint, update_id=update_id)
    text = message.text if message.text is not None else message.caption
    if text:
        return Inbound(patient_id=pid, kind="text", text=text, lang_hint=hint, update_id=update_id)
    if message.text is not None:  # Telegram sends no empty texts, but a Bot API server might
        return Inbound(patient_id=pid, kind="text", text="", lang_hint=hint, update_id=update_id)
    media = _MEDIA.get(message.content_type)
    if media is None:
        return None
    return Inbound(patient_id=pid, kind="media", media=media, lang_hint=hint, update_id=update_id)


def callback_inbound(callback: CallbackQuery, update_id: int | None) -> Inbound:
    """A quick-reply tap; the data goes to the service as it is (it answers foreign data)."""
    user = callback.from_user
    return Inbound(
        patient_id=patient_id(user),
        kind="button",
        data=(callback.data or "")[:64],
        lang_hint=user.language_code,
        update_id=update_id,
    )
