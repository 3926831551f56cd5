"""Operator files that do not validate are refused with file, line and problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinical import RULES_DIR
from dialog.ruleset import load_rules
from safety import DataFileError


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _edit(path: Path, old: str, new: str) -> int:
    """Replace `old` once; return the 1-based line where it was."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return line


def _errors(directory: Path) -> list[str]:
    with pytest.raises(DataFileError) as caught:
        load_rules(directory)
    return [str(error) for error in caught.value.errors]


def test_the_shipped_rules_validate() -> None:
    rules = load_rules(RULES_DIR)
    assert rules.protocols
    assert rules.red_flags.flags
    assert not [w for w in rules.warnings if "translation" in w.problem]


def test_unknown_question_in_a_rule_names_file_and_line(rules_copy: Path) -> None:
    path = rules_copy / "protocols" / "general.yaml"
    line = _edit(path, 'if: "general_new_confusion == yes"', 'if: "general_new_confusoin == yes"')
    errors = _errors(rules_copy)
    expected_prefix = f"{path}:"
    hits = [e for e in errors if e.startswith(expected_prefix) and "general_new_confusoin" in e]
    assert hits, errors
    reported_line = int(hits[0][len(expected_prefix) :].split(":")[0])
    assert line - 4 <= reported_line <= line, (line, hits)


def test_yaml_syntax_error_names_its_line(rules_copy: Path) -> None:
    path = rules_copy / "protocols" / "general.yaml"
    line = _edit(path, "rules:\n", "rules:\n  - id: [unclosed\n")
    errors = _errors(rules_copy)
    assert any(e.startswith(f"{path}:") and "YAML syntax" in e for e in errors), errors
    assert any(f"{path}:{line + 1}" in e or f"{path}:{line + 2}" in e for e in errors), errors


def test_missing_translation_is_an_error(rules_copy: Path) -> None:
    path = rules_copy / "protocols" / "general.yaml"
    _edit(path, 'zh: "有没有新出现的意识混乱，或者很难叫醒？"', "")
    errors = _errors(rules_copy)
    assert any("general.yaml" in e and "zh" in e and "Field required" in e for e in errors), errors


def test_a_level_without_advice_is_an_error(rules_copy: Path) -> None:
    path = rules_copy / "protocols" / "general.yaml"
    _edit(path, "level: consultation_24", "level: self_care")
    errors = _errors(rules_copy)
    assert any("advice is missing for level self_care" in e for e in errors), errors


def test_a_condition_with_code_is_refused(rules_copy: Path) -> None:
    path = rules_copy / "protocols" / "general.yaml"
    _edit(
        path,
        'if: "general_new_confusion == yes"',
        "if: \"__import__('os').system('touch /tmp/owned') == 0\"",
    )
    errors = _errors(rules_copy)
    assert any("general.yaml" in e and "rule confusion" in e and "__import__" in e for e in errors), errors
    assert not Path("/tmp/owned").exists()


def test_bad_red_flag_file_names_file_and_line(rules_copy: Path) -> None:
    path = rules_copy / "redflags" / "zz_bad.yaml"
    path.write_text(
        "sources:\n  - {id: src, title: A source}\nflags:\n"
        "  - id: broken\n    kind: emergency\n    level: self_care\n    all: [no_such_concept]\n"
        "    reason: {en: x, zh: y}\n    source: src\n",
        encoding="utf-8",
    )
    errors = _errors(rules_copy)
    assert any(e.startswith(f"{path}:6") and "level" in e for e in errors), errors


def test_unknown_concept_in_red_flag_is_refused(rules_copy: Path) -> None:
    path = rules_copy / "redflags" / "zz_bad.yaml"
    path.write_text(
        "sources:\n  - {id: src, title: A source}\nflags:\n"
        "  - id: broken\n    kind: emergency\n    level: emergency\n    all: [no_such_concept]\n"
        "    reason: {en: x, zh: y}\n    source: src\n",
        encoding="utf-8",
    )
    errors = _errors(rules_copy)
    assert any(e.startswith(f"{path}:4") and "no_such_concept" in e for e in errors), errors


def test_locale_text_missing_in_one_language(rules_copy: Path) -> None:
    path = rules_copy / "locales" / "zh.yaml"
    _edit(path, 'restart: "好的，我们重新开始。"\n', "")
    errors = _errors(rules_copy)
    assert any("restart" in e and "missing" in e for e in errors), errors


def test_version_changes_with_content(rules_copy: Path) -> None:
    before = load_rules(RULES_DIR).version
    _edit(rules_copy / "protocols" / "general.yaml", "rank: 0", "rank: 1")
    assert load_rules(rules_copy).version != before
