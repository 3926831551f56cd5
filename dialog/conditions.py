"""The condition language of protocol rules, parsed once and evaluated in three-valued logic.

Source text is parsed with Python's own parser (`ast.parse(mode="eval")`) and every node is
checked against a short allow-list before it becomes a tree of plain objects; nothing is ever
executed. Evaluation is Kleene logic: an unanswered question is unknown (None), `unknown and
false` is false, `unknown or true` is true.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

Value = str | float
Answers = Mapping[str, Value]
Truth = bool | None

SYMBOLS = frozenset({"yes", "no", "unsure", "M", "F", "self", "child", "other"})
ALWAYS = "always"


class ConditionError(ValueError):
    """A condition that cannot be parsed or uses something outside the language."""


@dataclass(frozen=True, slots=True)
class Always:
    def evaluate(self, answers: Answers) -> Truth:
        return True

    def variables(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class Compare:
    variable: str
    op: str
    values: tuple[Value, ...]  # one value, or the members of an `in` tuple

    def evaluate(self, answers: Answers) -> Truth:
        actual = answers.get(self.variable)
        if actual is None:
            return None
        if self.op == "in":
            return actual in self.values
        if self.op == "not in":
            return actual not in self.values
        expected = self.values[0]
        if self.op in ("==", "!="):
            same = actual == expected
            return same if self.op == "==" else not same
        if not isinstance(actual, float | int) or not isinstance(expected, float | int):
            return False  # `unsure` or a word is never greater or smaller than a number
        return _ORDER[self.op](actual, expected)

    def variables(self) -> frozenset[str]:
        return frozenset({self.variable})


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition

    def evaluate(self, answers: Answers) -> Truth:
        value = self.operand.evaluate(answers)
        return None if value is None else not value

    def variables(self) -> frozenset[str]:
        return self.operand.variables()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]

    def evaluate(self, answers: Answers) -> Truth:
        unknown = False
        for operand in self.operands:
            value = operand.evaluate(answers)
            if value is False:
                return False
            unknown |= value is None
        return None if unknown else True

    def variables(self) -> frozenset[str]:
        return frozenset().union(*(operand.variables() for operand in self.operands))


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]

    def evaluate(self, answers: Answers) -> Truth:
        unknown = False
        for operand in self.operands:
            value = operand.evaluate(answers)
            if value is True:
                return True
            unknown |= value is None
        return None if unknown else False

    def variables(self) -> frozenset[str]:
        return frozenset().union(*(operand.variables() for operand in self.operands))


Condition = Union[Always, Compare, Not, And, Or]  # noqa: UP007 (a runtime alias used in dataclasses)

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}


def parse_condition(source: str) -> Condition:
    """Parse `source` into a condition tree; raises ConditionError naming what is wrong."""
    text = source.strip()
    if text == ALWAYS:
        return Always()
    if not text:
        raise ConditionError("empty condition")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"cannot parse {text!r}: {exc.msg}") from None
    return _convert(tree.body)


def _convert(node: ast.expr) -> Condition:
    if isinstance(node, ast.BoolOp):
        operands = tuple(_convert(value) for value in node.values)
        return And(operands) if isinstance(node.op, ast.And) else Or(operands)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_convert(node.operand))
    if isinstance(node, ast.Compare):
        return _compare(node)
    if isinstance(node, ast.Name) and node.id == ALWAYS:
        return Always()
    raise ConditionError(f"not allowed in a condition: {ast.unparse(node)!r}")


def _compare(node: ast.Compare) -> Compare:
    if len(node.ops) != 1:
        raise ConditionError(f"one comparison at a time: {ast.unparse(node)!r}")
    op = _OPS.get(type(node.ops[0]))
    if op is None:
        raise ConditionError(f"operator not allowed: {ast.unparse(node)!r}")
    if not isinstance(node.left, ast.Name):
        raise ConditionError(f"put the question id on the left: {ast.unparse(node)!r}")
    right = node.comparators[0]
    if op in ("in", "not in"):
        if not isinstance(right, ast.Tuple | ast.List | ast.Set):
            raise ConditionError(f"`{op}` needs a list like (yes, unsure): {ast.unparse(node)!r}")
        values = tuple(_value(element) for element in right.elts)
    else:
        values = (_value(right),)
    return Compare(variable=node.left.id, op=op, values=values)


def _value(node: ast.expr) -> Value:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        number = node.operand.value
        if isinstance(number, int | float) and not isinstance(number, bool):
            return -float(number)
    raise ConditionError(f"not a value: {ast.unparse(node)!r}")


def comparisons(condition: Condition) -> list[Compare]:
    """Every comparison in a condition (for validation against the protocol's questions)."""
    if isinstance(condition, Compare):
        return [condition]
    if isinstance(condition, Not):
        return comparisons(condition.operand)
    if isinstance(condition, And | Or):
        return [c for operand in condition.operands for c in comparisons(operand)]
    return []
