"""Which source files a stage's code depends on, so Snakemake can rerun a stage when they change.

Snakemake tracks the text of a rule's shell command, not the Python it imports; rules therefore
list :func:`code_files` as an input: the stage module, the plug-in implementations its config
selects, and every module of theirs that they import from the same package, transitively (found
by parsing, without importing anything).
"""

from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name


def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] == PACKAGE:
        base = PACKAGE_DIR.joinpath(*parts[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None
    try:  # a plug-in outside the package: its own file only
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@lru_cache(maxsize=None)
def code_files(*modules: str) -> tuple[str, ...]:
    """Sorted paths of ``modules`` and the package modules they import (transitively)."""
    todo = [p for p in map(_module_path, modules) if p is not None]
    if len(todo) < len(modules):
        raise ValueError(f"cannot find the source of every module in {modules}")
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            dep = _module_path(name) if name.split(".")[0] == PACKAGE else None
            if dep is not None and dep not in seen:
                todo.append(dep)
    return tuple(sorted(str(p) for p in seen))
