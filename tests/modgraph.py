"""The llmclf module graph, read from the source with ast (nothing is imported): which llmclf modules a
file imports, anywhere in it (lazy imports inside functions included). tests/test_dvc_yaml.py compares it
with each stage's deps, tests/test_architecture.py with the layers of docs/architecture.md."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "llmclf"


def module_file(name: str) -> Path:
    """The file of a dotted module name: its .py, or a package's __init__.py."""
    path = REPO.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_name(path: Path) -> str:
    """The dotted name of a file of the package (llmclf/core/errors.py: llmclf.core.errors)."""
    parts = path.resolve().relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[str]:
    """Every module of the package by dotted name, llmclf itself and its subpackages included."""
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def package_of(name: str) -> str:
    """The subpackage a module is in (llmclf.core.errors, llmclf.core: core); "" for llmclf and its own modules."""
    parts = name.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return ""


def imported_modules(path: Path) -> set[str]:
    """The llmclf modules a file imports anywhere in it, by dotted name. `from P import x` counts P.x where
    that is a module, else P; a package counts where it is imported itself, not for the modules in it
    (their __init__.py holds a docstring)."""
    inside = path.resolve().is_relative_to(PACKAGE)
    package = ""
    if inside:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "llmclf"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not inside:
                    continue  # a stage script's sibling (_env), not llmclf
                parts = package.split(".")
                target = ".".join([*parts[:len(parts) - node.level + 1], *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "llmclf":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if module_file(sub).is_file() else target)
    return found - {"llmclf"}


def module_closure(path: Path) -> set[str]:
    """The llmclf modules a file runs: those it imports, directly or through others."""
    todo, seen = imported_modules(path), set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= imported_modules(module_file(name)) - seen
    return seen
