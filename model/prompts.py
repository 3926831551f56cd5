"""Prompt files: one per task, language and version, shipped as package data.

A file lives at `model/prompts/<lang>/<task>.v<N>.txt`. Lines starting with `#` before the first
section are comments. Sections start with a line `[system]`, `[user]` or `[assistant]` and become
chat messages in file order (user/assistant pairs before the last user message are examples).
Values are filled in with `string.Template` syntax: `$name` or `${name}`; a literal dollar is
`$$`. Filling never re-reads what was filled in, so patient text cannot inject placeholders.

`PromptLibrary.get(task, lang)` returns the newest version unless a version is asked for; tasks
pin the version they were written for so that a new prompt file is a reviewed change.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from model.backend import ChatMessage, Role
from model.errors import PromptError

_NAME = re.compile(r"^(?P<task>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.txt$")
_SECTION = re.compile(r"^\[(system|user|assistant)\]\s*$")


@dataclass(frozen=True, slots=True)
class Prompt:
    task: str
    lang: str
    version: int
    source: str  # where it was read from, for error messages
    messages: tuple[tuple[Role, string.Template], ...]

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(name for _, template in self.messages for name in template.get_identifiers())

    def render(self, **values: str) -> list[ChatMessage]:
        """The chat messages with every placeholder filled; extra values are ignored."""
        missing = self.placeholders - values.keys()
        if missing:
            raise PromptError(f"{self.source}: no value for {', '.join(sorted(missing))}")
        return [
            ChatMessage(role=role, content=template.substitute(values)) for role, template in self.messages
        ]


def parse_prompt(text: str, *, task: str, lang: str, version: int, source: str) -> Prompt:
    """Parse the text of one prompt file; raises `PromptError` naming `source` and the line."""
    sections: list[tuple[Role, list[str], int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SECTION.match(line)
        if match:
            role: Role = match.group(1)  # type: ignore[assignment]
            sections.append((role, [], number))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise PromptError(f"{source}:{number}: text before the first [system]/[user] section")
    if not sections:
        raise PromptError(f"{source}: no [system], [user] or [assistant] section")
    if sections[-1][0] != "user":
        raise PromptError(f"{source}: the last section must be [user]")
    messages: list[tuple[Role, string.Template]] = []
    for role, lines, number in sections:
        content = "\n".join(lines).strip()
        if not content:
            raise PromptError(f"{source}:{number}: empty [{role}] section")
        template = string.Template(content)
        if not template.is_valid():
            raise PromptError(f"{source}:{number}: bad placeholder (write a literal dollar as $$)")
        messages.append((role, template))
    return Prompt(task=task, lang=lang, version=version, source=source, messages=tuple(messages))


class PromptLibrary:
    """The prompt files under `root` (default: the ones shipped in `model/prompts/`)."""

    def __init__(self, root: Traversable | Path | None = None) -> None:
        self.root: Traversable = root if root is not None else files("model") / "prompts"
        self._cache: dict[tuple[str, str, int], Prompt] = {}

    def available(self) -> dict[tuple[str, str], list[int]]:
        """{(task, lang): [versions, oldest first]} of every file found."""
        found: dict[tuple[str, str], list[int]] = {}
        if not self.root.is_dir():
            return found
        for lang_dir in self.root.iterdir():
            if not lang_dir.is_dir():
                continue
            for entry in lang_dir.iterdir():
                match = _NAME.match(entry.name)
                if match:
                    found.setdefault((match["task"], lang_dir.name), []).append(int(match["version"]))
        return {key: sorted(versions) for key, versions in found.items()}

    def get(self, task: str, lang: str, version: int | None = None) -> Prompt:
        if version is None:
            versions = self.available().get((task, lang))
            if not versions:
                raise PromptError(f"no prompt for task {task!r} in language {lang!r} under {self.root}")
            version = versions[-1]
        key = (task, lang, version)
        if key not in self._cache:
            entry = self.root / lang / f"{task}.v{version}.txt"
            if not entry.is_file():
                raise PromptError(f"prompt file not found: {lang}/{task}.v{version}.txt under {self.root}")
            self._cache[key] = parse_prompt(
                entry.read_text(encoding="utf-8"),
                task=task,
                lang=lang,
                version=version,
                source=f"{lang}/{entry.name}",
            )
        return self._cache[key]

    def check(self) -> list[str]:
        """Every problem with every file (empty when all parse)."""
        problems = []
        for (task, lang), versions in sorted(self.available().items()):
            for version in versions:
                try:
                    self.get(task, lang, version)
                except PromptError as exc:
                    problems.append(str(exc))
        return problems
