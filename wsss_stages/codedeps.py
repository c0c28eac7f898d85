"""Which package files a stage's code depends on, so Snakemake can rerun a stage when they change.

Snakemake tracks the text of a rule's shell command, not the Python it imports; rules therefore
list ``stage_code_files(<stage>)`` as an input. The set is the stage module plus every
``wsss_stages`` module it imports, transitively (found by parsing, without importing anything).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


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
def stage_code_files(stage: str) -> tuple[str, ...]:
    """Sorted paths of the stage module and the package modules it imports (transitively)."""
    start = _module_path(f"{PACKAGE}.{stage}")
    if start is None:
        raise ValueError(f"no module {PACKAGE}.{stage}")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            dep = _module_path(name)
            if dep is not None and dep not in seen:
                todo.append(dep)
    return tuple(sorted(str(p) for p in seen))
