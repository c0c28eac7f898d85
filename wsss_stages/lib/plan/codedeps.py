"""What a stage's code does, as a fingerprint, so Snakemake reruns a stage when its behaviour changes.

Snakemake tracks the text of a rule's shell command, not the Python it imports. Each rule therefore
receives ``params.code``: :func:`code_fingerprint` of the stage module, the plug-in implementations
its config selects, and every module of this package they import, transitively (found by parsing,
without importing anything). The fingerprint hashes each file's syntax tree without docstrings;
comments, blank lines and formatting are not in the tree, so editing them (or touching a file)
reruns nothing, while a changed expression reruns the stage and what depends on it.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2]
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


def _parents(name: str) -> list[str]:
    """The packages Python runs before a module (their ``__init__``): ``a.b.c`` → ``a``, ``a.b``."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations, never run."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(child for child in ast.iter_child_nodes(node) if not _is_type_checking(child))


def _imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {parent for name in names for parent in (*_parents(name), name)}


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def code_files(*modules: str) -> tuple[str, ...]:
    """Sorted paths of ``modules``, their packages and the package modules they import (transitively)."""
    return tuple(sorted(str(p) for p in _closure(modules)))


@cache
def _closure(modules: tuple[str, ...]) -> frozenset[Path]:
    missing = [m for m in modules if _module_path(m) is None]
    if missing:
        raise ValueError(f"cannot find the source of {missing}")
    wanted = [name for module in modules for name in (*_parents(module), module)]
    todo = [p for p in map(_module_path, wanted) if p is not None]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(_parse(path)):
            dep = _module_path(name) if name.split(".")[0] == PACKAGE else None
            if dep is not None and dep not in seen:
                todo.append(dep)
    return frozenset(seen)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


@cache
def behaviour(path: Path) -> str:
    """A file's syntax tree without docstrings, positions or comments, as text."""
    return ast.dump(_without_docstrings(copy.deepcopy(_parse(path))), include_attributes=False)


def _label(path: Path) -> str:
    """A file's name independent of where the checkout lies (the package-relative path, or the file name)."""
    return str(path.relative_to(PACKAGE_DIR.parent)) if path.is_relative_to(PACKAGE_DIR.parent) else path.name


@cache
def code_fingerprint(*modules: str) -> str:
    """A short hash of what ``modules`` and everything they import from the package do."""
    digest = hashlib.sha256()
    for path in sorted(_closure(modules), key=_label):
        digest.update(f"{_label(path)}\0{behaviour(path)}\0".encode())
    return digest.hexdigest()[:16]
