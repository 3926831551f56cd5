"""The rule condition language: three-valued logic, and nothing in it can run code."""

from __future__ import annotations

import pytest

from dialog.conditions import ConditionError, parse_condition


@pytest.mark.parametrize(
    ("source", "answers", "expected"),
    [
        ("stiff_neck == yes", {}, None),
        ("stiff_neck == yes", {"stiff_neck": "yes"}, True),
        ("stiff_neck in (yes, unsure)", {"stiff_neck": "unsure"}, True),
        ("stiff_neck not in (yes, unsure)", {"stiff_neck": "no"}, True),
        ("temperature >= 39 and days >= 3", {"temperature": 39.5}, None),
        ("temperature >= 39 and days >= 3", {"temperature": 38.0}, False),
        ("temperature >= 39 or days >= 3", {"days": 4.0}, True),
        ("temperature >= 39", {"temperature": "unsure"}, False),
        ("not (age < 0.25)", {"age": 0.1}, False),
        ("sex == F and age >= 12", {"sex": "F", "age": 30.0}, True),
        ("always", {}, True),
        ("temperature > -1", {"temperature": 0.0}, True),
    ],
)
def test_three_valued_evaluation(source: str, answers: dict[str, str | float], expected: bool | None) -> None:
    assert parse_condition(source).evaluate(answers) is expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('echo owned')",
        "open('/etc/passwd')",
        "x.__class__ == 1",
        "(lambda: 1)() == 1",
        "[c for c in ()] == 1",
        "x == y == z",
        "1 == x",
        "x + 1 > 2",
        "x in y",
        "x == f'{1}'",
        "",
        "x ==",
    ],
)
def test_conditions_cannot_run_code(source: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(source)


def test_a_condition_is_data_not_code(tmp_path: object) -> None:
    condition = parse_condition("stiff_neck == __import__")
    # The would-be builtin is read as a plain symbol and compared as a string.
    assert condition.evaluate({"stiff_neck": "__import__"}) is True
    assert condition.variables() == frozenset({"stiff_neck"})
