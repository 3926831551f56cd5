"""The simulator's contract (../shared/CASES.md) and the terminal chat, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.terminal import chat as terminal_chat
from dialog.ruleset import load_rules
from dialog.service import ConsultationService
from safety import REGIONS
from storage.memory import MemoryStore
from tests.helpers import fixture_rules_dir

CASES = [
    {
        "id": "t-1",
        "lang": "en",
        "age": 30,
        "sex": "F",
        "messages": ["fever since yesterday, no stiff neck"],
        "answers": {"drinking": "normal"},
        "expected": {"triage": "self_care", "red_flag": False},
    },
    {
        "id": "t-2",
        "age": 4,
        "sex": "M",
        "messages": ["my son has a fever", "his neck is stiff now"],
        "expected": {"triage": "emergency", "red_flag": True},
    },
    {
        "id": "t-3",
        "lang": "zh",
        "age": 60,
        "sex": "M",
        "messages": ["胸痛，出冷汗"],
        "expected": {"triage": "emergency_ambulance", "red_flag": True},
    },
    {
        "id": "t-4",
        "age": 40,
        "sex": "M",
        "messages": ["cough for weeks"],
        "expected": {"triage": "non_emergency"},
        "note": "ignored field",
    },
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rules = fixture_rules_dir(tmp_path)
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in CASES) + "\n", encoding="utf-8")
    return rules, cases, tmp_path / "results.jsonl"


def test_simulate_writes_result_lines_and_a_summary(files: tuple[Path, Path, Path]) -> None:
    rules, cases, out = files
    result = CliRunner().invoke(cli, ["simulate", str(cases), "--out", str(out), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["t-1", "t-2", "t-3", "t-4"]
    by_id = {line["id"]: line for line in lines}
    for line in lines:
        assert set(line) >= {
            "id",
            "triage",
            "triage3",
            "red_flag",
            "protocol",
            "turns",
            "questions",
            "rule",
            "expected",
            "correct",
            "transcript",
        }
    assert by_id["t-1"]["triage"] == "self_care"
    assert by_id["t-1"]["rule"] == "fever_test.base"
    assert by_id["t-1"]["correct"] is True
    assert by_id["t-2"]["red_flag"] is True
    assert by_id["t-2"]["triage3"] == "emergency"
    assert by_id["t-3"]["triage"] == "emergency_ambulance"
    assert by_id["t-4"]["triage3"] == "non_emergency"
    assert by_id["t-4"]["correct"] is True
    assert by_id["t-1"]["transcript"][0] == {"from": "patient", "text": CASES[0]["messages"][0]}
    assert "accuracy: 100.0% (4/4)" in result.output
    assert "red-flag recall: 100.0% (2/2)" in result.output
    assert "false alarms: 0.0% (0/1)" in result.output
    assert "confusion" in result.output


def test_unknown_policy_changes_answers(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    rules, _, out = files
    cases = tmp_path / "one.jsonl"
    cases.write_text(
        json.dumps(
            {"id": "u", "age": 30, "sex": "F", "messages": ["a cough"], "expected": {"triage": "self_care"}}
        )
        + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    unsure = runner.invoke(cli, ["simulate", str(cases), "--out", str(out), "--rules", str(rules)])
    assert json.loads(out.read_text().splitlines()[0])["triage"] == "consultation", unsure.output
    no = runner.invoke(
        cli, ["simulate", str(cases), "--out", str(out), "--rules", str(rules), "--unknown", "no"]
    )
    assert json.loads(out.read_text().splitlines()[0])["triage"] == "self_care", no.output


def test_a_bad_case_line_names_its_line(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    rules, _, _ = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ok", "messages": ["fever"]}\n{"id": "x", "messages": []}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["simulate", str(bad), "--rules", str(rules)])
    assert result.exit_code != 0
    assert "bad.jsonl:2" in result.output


def test_rules_check_reports_problems_with_exit_code(files: tuple[Path, Path, Path]) -> None:
    rules, _, _ = files
    runner = CliRunner()
    good = runner.invoke(cli, ["rules", "check", str(rules)])
    assert good.exit_code == 0, good.output
    assert "ok: version" in good.output
    protocol = rules / "protocols" / "cough_test.yaml"
    protocol.write_text(protocol.read_text().replace("cough_weeks in", "cough_wekes in"), encoding="utf-8")
    bad = runner.invoke(cli, ["rules", "check", str(rules)])
    assert bad.exit_code == 1
    assert "cough_test.yaml:" in bad.output
    assert "cough_wekes" in bad.output


def test_a_bad_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WENZHEN_REGION", "mars")
    result = CliRunner().invoke(cli, ["rules", "check"])
    assert result.exit_code != 0
    assert "WENZHEN_REGION" in result.output


async def test_terminal_chat_numbers_quick_replies(tmp_path: Path) -> None:
    rules = load_rules(fixture_rules_dir(tmp_path))
    service = ConsultationService(rules, MemoryStore(), REGIONS["cn"], default_lang="en")
    typed = iter(["I have a fever", "1", "1", "30", "2", "2", "1", "1", "1", "/quit"])
    shown: list[str] = []
    await terminal_chat(service, patient_id="t", read=lambda _: next(typed), write=shown.append)
    screen = "\n".join(shown)
    assert "[1] I agree" in screen
    assert "[1] Me" in screen
    assert "My advice:" in screen


def test_start_up_refuses_rules_that_do_not_validate(
    files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, _, _ = files
    flags = rules / "redflags" / "test.yaml"
    flags.write_text(
        flags.read_text().replace("level: emergency_ambulance", "level: soonish", 1), encoding="utf-8"
    )
    monkeypatch.setenv("WENZHEN_RULES_DIR", str(rules))
    monkeypatch.setenv("WENZHEN_MODEL", "none")
    result = CliRunner().invoke(cli, ["chat"], input="/quit\n")
    assert result.exit_code == 1
    assert f"{flags}:" in result.output
    assert "not starting" in result.output


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_rules_test_passes_and_fails_with_the_expectations(files: tuple[Path, Path, Path]) -> None:
    rules, cases, _ = files
    runner = CliRunner()
    good = runner.invoke(cli, ["rules", "test", str(rules), "--cases", str(cases)])
    assert good.exit_code == 0, good.output
    assert "all cases meet their expectations" in good.output
    _edit(rules / "protocols" / "cough_test.yaml", "level: consultation, if", "level: self_care, if")
    bad = runner.invoke(cli, ["rules", "test", str(rules), "--cases", str(cases)])
    assert bad.exit_code != 0, bad.output
    assert "t-4: expected non_emergency" in bad.output


def test_rules_diff_lists_what_an_edit_changes(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    old, cases, _ = files
    new = tmp_path / "edited"
    shutil.copytree(old, new)
    report = tmp_path / "diff.html"
    command = ["rules", "diff", str(old), str(new), "--cases", str(cases), "--html", str(report)]
    _edit(new / "protocols" / "fever_test.yaml", "fever_days >= 5 or ", "")
    unchanged = CliRunner().invoke(cli, command)
    assert unchanged.exit_code == 0, unchanged.output
    assert "no case changes" in unchanged.output  # no case has a fever of 5 days or more
    _edit(new / "protocols" / "cough_test.yaml", "level: consultation, if", "level: self_care, if")
    changed = CliRunner().invoke(cli, command)
    assert "1 case(s) change:" in changed.output, changed.output
    assert "- t-4 (triage)" in changed.output
    assert "before: consultation by cough_test.long" in changed.output
    assert "after:  self_care by cough_test.long" in changed.output
    assert "after is WRONG" in changed.output
    assert 'class="wrong"' in report.read_text(encoding="utf-8")
