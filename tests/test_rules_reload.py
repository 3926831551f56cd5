"""Live rules changes: consultations finish on the version they started with; the keeper refuses
edits that do not validate or fail the regression suite (the running rules stay), makes good
ones live, keeps each live version's files for a rollback, and notices edits on disk by itself.
Real Redis for the history, real child processes for `rules test` and `rules diff`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.rules_keeper import RulesKeeper, write_files
from dialog.ruleset import load_rules
from dialog.service import ConsultationService
from safety import REGIONS
from storage.memory import MemoryStore
from storage.rules_history import RulesHistory
from tests.helpers import Chat, fixture_rules_dir

NECK_OLD = 'ask: {en: "Is the neck stiff?"'
NECK_NEW = 'ask: {en: "Is the neck stiff or painful to bend?"'
FEVER = Path("protocols") / "fever_test.yaml"
CASES = [
    {"id": "r-1", "age": 30, "sex": "F", "messages": ["I have a fever"], "answers": {"stiff_neck": "yes"},
     "expected": {"triage": "emergency"}},
    {"id": "r-2", "age": 40, "sex": "M", "messages": ["cough for weeks"],
     "expected": {"triage": "non_emergency"}},
]  # fmt: skip


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return fixture_rules_dir(tmp_path)


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(case) for case in CASES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def history(redis: Redis, key_prefix: str) -> AsyncIterator[RulesHistory]:
    yield RulesHistory(redis, prefix=key_prefix)
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)


async def test_a_consultation_finishes_on_the_rules_it_started_with(rules_dir: Path) -> None:
    service = ConsultationService(load_rules(rules_dir), MemoryStore(), REGIONS["cn"], default_lang="en")
    started = Chat(service, patient_id="before")
    await started.say("I have had a fever since yesterday")
    await started.agree_and_introduce(age="34", sex="F")
    assert started.last.text == "Is the neck stiff?"
    old_version = service.live_rules.version

    _edit(rules_dir / FEVER, NECK_OLD, NECK_NEW)
    _edit(rules_dir / FEVER, "level: consultation_24, if", "level: emergency, if")
    service.use_rules(load_rules(rules_dir))
    assert service.live_rules.version != old_version

    await started.tap("a:stiff_neck:no")
    await started.tap("a:drinking:little")
    await started.tap("open:none")
    assert "See a doctor today." in started.last.text  # the old rule: consultation_24
    assert started.last.triage is not None
    assert started.last.triage.level.value == "consultation_24"
    session = await service.store.load("before")
    assert session is not None
    assert session.case is not None
    assert session.case.rules_version == old_version

    fresh = Chat(service, patient_id="after")
    await fresh.say("I have had a fever since yesterday")
    await fresh.agree_and_introduce(age="34", sex="F")
    assert fresh.last.text == "Is the neck stiff or painful to bend?"  # a new case: the new rules


async def test_the_keeper_refuses_bad_edits_and_makes_good_ones_live(
    rules_dir: Path, cases: Path, history: RulesHistory
) -> None:
    service = ConsultationService(load_rules(rules_dir), MemoryStore(), REGIONS["cn"], default_lang="en")
    told: list[str] = []

    async def notify(text: str) -> None:
        told.append(text)

    keeper = RulesKeeper(service, rules_dir, history, cases=[cases], notify=notify)
    await keeper.start()
    first = service.live_rules.version
    assert await keeper.reload("ops") is None  # nothing changed

    protocol = rules_dir / "protocols" / "fever_test.yaml"
    good_text = protocol.read_text(encoding="utf-8")
    protocol.write_text(
        good_text.replace("rules:\n", "rules:\n  - {id: broken, level: urgent\n"), encoding="utf-8"
    )
    invalid = await keeper.reload("ops")
    assert invalid is not None
    assert invalid.action == "rejected"
    assert "fever_test.yaml" in invalid.report
    assert "does not validate" in invalid.report
    assert service.live_rules.version == first
    assert "refused" in told[-1]

    protocol.write_text(good_text, encoding="utf-8")
    _edit(
        rules_dir / "protocols" / "fever_test.yaml",
        'level: emergency, if: "stiff_neck',
        'level: self_care, if: "stiff_neck',
    )
    regressed = await keeper.reload("ops")
    assert regressed is not None
    assert regressed.action == "rejected"
    assert "regression" in regressed.report
    assert "r-1: expected emergency" in regressed.report
    assert service.live_rules.version == first

    protocol.write_text(good_text.replace(NECK_OLD, NECK_NEW), encoding="utf-8")
    good = await keeper.reload("li")
    assert good is not None
    assert good.action == "reloaded", good
    assert good.files_changed == ["protocols/fever_test.yaml"]
    assert good.previous == first
    assert service.live_rules.version == good.version != first
    assert "all cases meet their expectations" in good.report
    assert "no case changes" in good.report  # a wording change moves no case
    status = await history.status()
    assert status is not None
    assert status.live_version == good.version
    events = await history.events()
    assert [e.action for e in events] == ["reloaded", "rejected", "rejected", "started"]
    assert [e.who for e in events] == ["li", "ops", "ops", "start"]

    # a rollback: the first version's files, kept in the history, go back through the same checks
    files = await history.files(first)
    assert files is not None
    write_files(files, rules_dir)
    back = await keeper.reload("command line")
    assert back is not None
    assert back.action == "reloaded"
    assert service.live_rules.version == first


async def test_the_keeper_notices_an_edit_on_disk(rules_dir: Path, history: RulesHistory) -> None:
    service = ConsultationService(load_rules(rules_dir), MemoryStore(), REGIONS["cn"], default_lang="en")
    keeper = RulesKeeper(service, rules_dir, history)  # no case library: validated only
    await keeper.start()
    first = service.live_rules.version
    stop = asyncio.Event()
    watcher = asyncio.create_task(keeper.watch(stop, every=0.2))
    try:
        _edit(rules_dir / FEVER, NECK_OLD, NECK_NEW)
        async with asyncio.timeout(15):
            while service.live_rules.version == first:  # noqa: ASYNC110 (the service has no event for it)
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await watcher
    events = await history.events()
    assert events[0].who == "file change"
    assert events[0].action == "reloaded"
    assert "validated only" in events[0].report
