"""Live changes to the rules: a bad edit never takes the bot down.

When the rules directory changes (or an operator sends /reload), the keeper
  1. validates the new files (`load_rules`; errors name file, line and problem),
  2. runs the regression suite (`wenzhen rules test` on the case library, in a child process so
     the bot keeps answering), and works out what the edit changes (`wenzhen rules diff`),
  3. only then makes them live (`ConsultationService.use_rules`): new consultations use them,
     those in progress finish on the version they started with.
On any failure the running rules stay and the operators are told what failed. Every version that
goes live is kept in the history with its files, so `wenzhen rules rollback VERSION` can put it
back (through the same checks).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from dialog.rules_events import RulesEvent, RulesStatus
from dialog.ruleset import RuleSet, load_rules
from dialog.service import ConsultationService
from dialog.session import utcnow
from safety import DataFileError
from storage.rules_history import RulesHistory

log = logging.getLogger(__name__)

RULE_FILES = ("*.yaml", "*.yml")
REPORT_LIMIT = 3500  # characters of a report kept and sent (a Telegram message holds 4096)
CHECK_TIMEOUT = 300.0
Notify = Callable[[str], Awaitable[None]]


def read_files(directory: Path) -> dict[str, str]:
    """The rules files under `directory`, by path relative to it."""
    found = {}
    for pattern in RULE_FILES:
        for path in directory.rglob(pattern):
            found[path.relative_to(directory).as_posix()] = path.read_text(encoding="utf-8")
    return dict(sorted(found.items()))


def write_files(files: dict[str, str], directory: Path) -> None:
    """Make `directory` hold exactly these rules files (others of its rules files are removed)."""
    for pattern in RULE_FILES:
        for path in directory.rglob(pattern):
            if path.relative_to(directory).as_posix() not in files:
                path.unlink()
    for name, text in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


class RulesKeeper:
    def __init__(
        self,
        service: ConsultationService,
        directory: Path,
        history: RulesHistory,
        *,
        cases: Sequence[Path] = (),
        notify: Notify | None = None,
    ) -> None:
        self.service = service
        self.directory = directory
        self.history = history
        self.cases = list(cases)
        self.notify = notify
        self._files: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Record the version the bot started with (and keep its files for rollbacks)."""
        self._files = await asyncio.to_thread(read_files, self.directory)
        rules = self.service.live_rules
        event = RulesEvent(version=rules.version, who="start", action="started", files_changed=[])
        await self._record(event, rules, files=self._files)

    async def reload(self, who: str) -> RulesEvent | None:
        """Check the rules on disk and make them live if they pass; None when nothing changed."""
        async with self._lock:
            files = await asyncio.to_thread(read_files, self.directory)
            if files == self._files:
                return None
            touched = changed(self._files, files)
            live = self.service.live_rules
            try:
                rules: RuleSet = await asyncio.to_thread(load_rules, self.directory)
            except DataFileError as exc:
                report = "the edit does not validate:\n" + "\n".join(str(error) for error in exc.errors)
                return await self._refuse(who, live, touched, report, version="invalid")
            passed, test_report = await self._regressions()
            if not passed:
                return await self._refuse(who, live, touched, test_report, version=rules.version)
            diff_report = await self._diff()
            self.service.use_rules(rules)
            self._files = files
            event = RulesEvent(
                version=rules.version,
                previous=live.version,
                who=who,
                action="reloaded",
                files_changed=touched,
                report=_clip(f"{test_report}\n{diff_report}".strip()),
            )
            await self._record(event, rules, files=files)
            log.info(
                "rules %s are live (were %s; %d file(s) changed)", rules.version, live.version, len(touched)
            )
            await self._tell(
                f"Rules {rules.version} are live (were {live.version}), by {who}.\n"
                f"Files: {', '.join(touched)}\n{event.report}"
            )
            return event

    async def watch(self, stop: asyncio.Event, *, every: float = 2.0) -> None:
        """Reload when the files change and then stay unchanged for `every` seconds (an editor
        writing several files, or one file in parts, is not caught half way)."""
        seen = self._files
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                now = await asyncio.to_thread(read_files, self.directory)
                if now != self._files and now == seen:
                    await self.reload("file change")
                seen = now
            except Exception:  # the watcher must outlive any one bad moment (a file half written)
                log.exception("rules watcher")

    async def _regressions(self) -> tuple[bool, str]:
        if not self.cases:
            return True, "no case library configured: validated only"
        args = ["rules", "test", str(self.directory)]
        for path in self.cases:
            args += ["--cases", str(path)]
        code, output = await _wenzhen(args)
        if code != 0:
            return False, "the edit fails the regression suite:\n" + _tail(output)
        return True, _tail(output, lines=8)

    async def _diff(self) -> str:
        if not self.cases:
            return ""
        with tempfile.TemporaryDirectory(prefix="wenzhen-rules-") as old:
            await asyncio.to_thread(write_files, self._files, Path(old))
            args = ["rules", "diff", old, str(self.directory)]
            for path in self.cases:
                args += ["--cases", str(path)]
            code, output = await _wenzhen(args)
        return output if code == 0 else "the diff could not be made:\n" + _tail(output)

    async def _refuse(
        self, who: str, live: RuleSet, touched: list[str], report: str, *, version: str
    ) -> RulesEvent:
        event = RulesEvent(
            version=version,
            previous=live.version,
            who=who,
            action="rejected",
            files_changed=touched,
            report=_clip(report),
        )
        await self._record(event, live)
        log.warning("rules edit refused (%d file(s)); %s stay live", len(touched), live.version)
        await self._tell(f"Rules edit by {who} refused; {live.version} stays live.\n{event.report}")
        return event

    async def _record(self, event: RulesEvent, live: RuleSet, *, files: dict[str, str] | None = None) -> None:
        status = RulesStatus(
            live_version=live.version if event.action == "rejected" else event.version,
            directory=str(self.directory),
            since=utcnow() if event.action != "rejected" else (await self._since(live.version)),
            last=event,
        )
        try:
            await self.history.record(event, files=files, status=status)
        except (ConnectionError, OSError) as exc:
            log.error("rules history not written (%s)", type(exc).__name__)

    async def _since(self, version: str) -> datetime:
        current = await self.history.status()
        return current.since if current is not None and current.live_version == version else utcnow()

    async def _tell(self, text: str) -> None:
        if self.notify is not None:
            try:
                await self.notify(text[:REPORT_LIMIT])
            except Exception:
                log.exception("operators could not be told about the rules")


async def _wenzhen(args: list[str]) -> tuple[int, str]:
    """Run a `wenzhen` command in a child process: (exit code, its output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return 1, f"timed out after {CHECK_TIMEOUT:.0f}s"
    return process.returncode or 0, out.decode("utf-8", "replace")


def _tail(text: str, *, lines: int = 40) -> str:
    kept = [line for line in text.splitlines() if line.strip() and "simulating" not in line]
    return "\n".join(kept[-lines:])


def _clip(text: str) -> str:
    return text if len(text) <= REPORT_LIMIT else text[: REPORT_LIMIT - 1] + "…"
