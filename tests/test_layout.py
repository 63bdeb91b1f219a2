"""The house rules, checked: the layout shows the pipeline, no import circles, short modules.

Imports are read from the source (ast), so a rule broken by a lazy import inside a function is
caught too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
TOP_MODULES = {"__init__", "__main__", "cli", "models", "logs"}
# config is a package too: settings, narrative files, durations, file:line errors
PACKAGES = {"app", "config", "embedding", "feeds", "matching", "storage", "telegram", "tools",
            "trends"}
MAX_LINES = 400

# Who may import whom. Data flows one way: feeds → embedding → matching → storage → telegram,
# with trends beside delivery; `app` wires the stages, `tools` measure and build, `cli` starts
# either. A stage never imports one on its right, nor app, tools or cli.
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "logs": set(),
    "config": {"models", "matching"},  # narrative files' keyword terms are validated on load
    "feeds": {"models", "config"},
    "embedding": {"models", "config"},
    "matching": {"models", "config", "embedding", "feeds"},
    "storage": {"models", "config"},
    "trends": {"models", "config", "storage"},
    "telegram": {"models", "config", "storage", "trends", "matching"},
    "app": {"models", "config", "logs", "feeds", "embedding", "matching", "storage", "trends",
            "telegram", "tools"},
    "tools": {"models", "config", "feeds", "embedding", "matching", "storage", "app"},
    "cli": {"models", "config", "logs", "app", "tools", "storage", "feeds", "embedding",
            "matching", "trends", "telegram"},
    "__main__": {"cli"},
    "__init__": set(),
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(BOT.rglob("*.py")):
        parts = path.relative_to(BOT).with_suffix("").parts
        yield ".".join(("bot", *parts)), path


def imported(path: Path, module: str) -> set[str]:
    """Every bot.* module that `path` imports, lazily or not, resolved to module names."""
    tree = ast.parse(path.read_text("utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bot.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            if base == "bot" or base.startswith("bot."):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    known = {name for name, _ in modules()} | {f"bot.{p}" for p in PACKAGES}
    return {name for name in found if name in known and name != module}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {name: imported(path, name) for name, path in modules()}


def test_top_of_bot_holds_only_the_packages_and_the_entry_modules() -> None:
    entries = {p.stem for p in BOT.iterdir() if p.suffix == ".py"}
    folders = {p.name for p in BOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert entries <= TOP_MODULES
    assert folders == PACKAGES


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_module_is_short_and_says_what_it_owns(module: str, path: Path) -> None:
    text = path.read_text("utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{module}: over {MAX_LINES} lines"
    if path.name != "__main__.py":
        assert ast.get_docstring(ast.parse(text)), f"{module}: no module docstring"


def test_no_stage_imports_against_the_flow() -> None:
    wrong = sorted(f"{name} imports {dep}" for name, deps in GRAPH.items() for dep in deps
                   if area(dep) != area(name) and area(dep) not in ALLOWED[area(name)])
    assert wrong == []


def test_no_import_circle() -> None:
    # Package __init__ re-exports are edges too: a module importing its own package's public
    # names through the package is a circle when the package imports it back.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH.get(node, ())):
            if dep in stack and dep == node:
                continue
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_walk_sees_imports() -> None:
    """The checks above are only worth something if the walk finds real edges."""
    assert "bot.config" in GRAPH["bot.cli"]
    assert any(dep.startswith("bot.storage") for dep in GRAPH["bot.app.pipeline"])
