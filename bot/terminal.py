"""The terminal chat: the consultation service in a terminal, quick replies numbered."""

from __future__ import annotations

import getpass
from collections.abc import Callable

from dialog.events import Button, Inbound, Outbound, Reply
from dialog.service import ConsultationService

_COMMANDS = {
    "/start": "start",
    "/restart": "restart",
    "/help": "help",
    "/human": "human",
    "/forget": "forget",
    "/language": "language",
}


def render(actions: list[Outbound], write: Callable[[str], None]) -> tuple[Button, ...]:
    """Print replies; return the buttons of the last one (numbered quick replies)."""
    buttons: tuple[Button, ...] = ()
    for action in actions:
        if not isinstance(action, Reply):
            continue
        write("")
        write(action.text)
        buttons = action.buttons
        for number, button in enumerate(buttons, start=1):
            write(f"  [{number}] {button.label}")
    return buttons


async def chat(
    service: ConsultationService,
    *,
    patient_id: str | None = None,
    lang: str | None = None,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    patient_id = patient_id or f"terminal:{getpass.getuser()}"
    write("wenzhen 问诊 — type your message; numbers pick a quick reply; /help, /quit to leave.")
    buttons = render(
        await service.handle(
            Inbound(patient_id=patient_id, kind="command", command="resume", lang_hint=lang)
        ),
        write,
    )
    while True:
        try:
            line = read("> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("")
            return
        if line in ("/quit", "/exit"):
            return
        if line.isdigit() and 1 <= int(line) <= len(buttons):
            inbound = Inbound(patient_id=patient_id, kind="button", data=buttons[int(line) - 1].data)
        elif line in _COMMANDS:
            inbound = Inbound(patient_id=patient_id, kind="command", command=_COMMANDS[line])
        else:
            inbound = Inbound(patient_id=patient_id, kind="text", text=line)
        buttons = render(await service.handle(inbound), write)
