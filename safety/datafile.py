"""Loading operator-edited YAML files so that every problem names its file and line.

`load_yaml` returns the data with a locator; `validate` turns pydantic errors into `DataError`s
that carry the file, the line of the offending node, and a readable problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
Loc = Sequence[int | str]


@dataclass(frozen=True, slots=True)
class DataError:
    file: str
    line: int | None
    problem: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.problem}"


class DataFileError(Exception):
    """One or more data files did not validate; `errors` lists every problem found."""

    def __init__(self, errors: Sequence[DataError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None

    def line(self, loc: Loc) -> int | None:
        """1-based line of the node at `loc` (keys and list indexes), or of its nearest parent."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key] if 0 <= key < len(node.value) else None
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    def error(self, loc: Loc, problem: str, severity: str = "error") -> DataError:
        return DataError(str(self.path), self.line(loc), problem, severity)


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file; a syntax error becomes a DataFileError with its line."""
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise DataFileError([DataError(str(path), line, f"YAML syntax: {exc.problem}")]) from exc
    return YamlDocument(path=path, data=data, root=root)


def validate(document: YamlDocument, model: type[ModelT]) -> ModelT:
    """Validate a document against a pydantic model, naming file and line for every problem."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        raise DataFileError(
            [document.error(error["loc"], _describe(error)) for error in exc.errors()]
        ) from exc


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def collect(checks: Sequence[Callable[[], object]]) -> list[DataError]:
    """Run each check, gathering DataFileErrors instead of stopping at the first."""
    errors: list[DataError] = []
    for check in checks:
        try:
            check()
        except DataFileError as exc:
            errors.extend(exc.errors)
    return errors
