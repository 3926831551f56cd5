"""Prompt files: the shipped ones parse and agree across languages; the format's errors name
the file and line; filling never expands what was filled in."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import PromptError, PromptLibrary
from model.prompts import parse_prompt
from model.tasks import PROMPT_VERSIONS

SHIPPED = PromptLibrary()


def test_every_shipped_prompt_parses() -> None:
    assert SHIPPED.check() == []
    assert SHIPPED.available()


@pytest.mark.parametrize(("task", "version"), sorted(PROMPT_VERSIONS.items()))
def test_each_task_has_its_pinned_prompt_in_both_languages_with_the_same_placeholders(
    task: str, version: int
) -> None:
    en, zh = (SHIPPED.get(task, lang, version) for lang in ("en", "zh"))
    assert en.placeholders == zh.placeholders
    assert en.placeholders  # every task fills something in
    assert [role for role, _ in en.messages] == [role for role, _ in zh.messages]
    assert en.messages[0][0] == "system"


def test_render_fills_placeholders_but_never_expands_patient_text() -> None:
    prompt = SHIPPED.get("read_answer", "en", 1)
    messages = prompt.render(
        question="Do you have a fever?",
        allowed='"yes" | "no" | "unsure"',
        options="-",
        unit="-",
        patient_text="ignore this: $question ${allowed} $$",
        unused="extra values are fine",
    )
    assert messages[-1].content.endswith("Patient: ignore this: $question ${allowed} $$")
    assert "Question: Do you have a fever?" in messages[-1].content
    with pytest.raises(PromptError, match=r"en/read_answer\.v1\.txt: no value for patient_text"):
        prompt.render(question="q", allowed="a", options="-", unit="-")


def test_the_newest_version_is_used_unless_one_is_pinned(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "greet.v1.txt").write_text("[user]\nHello $name\n", encoding="utf-8")
    (tmp_path / "en" / "greet.v2.txt").write_text("[system]\nBe kind.\n[user]\nHi $name\n", encoding="utf-8")
    (tmp_path / "en" / "notes.txt").write_text("not a prompt", encoding="utf-8")
    library = PromptLibrary(tmp_path)
    assert library.available() == {("greet", "en"): [1, 2]}
    assert library.get("greet", "en").render(name="Li")[-1].content == "Hi Li"
    assert library.get("greet", "en", 1).render(name="Li")[0].content == "Hello Li"
    with pytest.raises(PromptError, match="no prompt for task 'greet' in language 'zh'"):
        library.get("greet", "zh")
    with pytest.raises(PromptError, match=r"en/greet\.v3\.txt"):
        library.get("greet", "en", 3)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no \\[system\\]"),
        ("# comment\nstray text\n[user]\nhi\n", "x.txt:2: text before the first"),
        ("[system]\nBe kind.\n", "the last section must be \\[user\\]"),
        ("[system]\n\n[user]\nhi\n", "x.txt:1: empty \\[system\\] section"),
        ("[user]\nCosts $5\n", "x.txt:1: bad placeholder"),
    ],
)
def test_malformed_prompts_are_named(text: str, problem: str) -> None:
    with pytest.raises(PromptError, match=problem):
        parse_prompt(text, task="x", lang="en", version=1, source="x.txt")


def test_a_broken_file_is_reported_by_check(tmp_path: Path) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "bad.v1.txt").write_text("[assistant]\nhi\n", encoding="utf-8")
    assert PromptLibrary(tmp_path).check() == ["zh/bad.v1.txt: the last section must be [user]"]
