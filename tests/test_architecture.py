"""The code keeps its shape: no module imports another that, through any chain, imports
it back (the layers themselves are import-linter's contracts in pyproject.toml, which
`./dev test` checks with `lint-imports`)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGES = ("msglog", "companies", "templates_app")


def test_no_import_cycles():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    cycles = sorted(
        {
            tuple(sorted((importer, imported)))
            for importer in graph.modules
            for imported in graph.find_modules_directly_imported_by(importer)
            if graph.chain_exists(importer=imported, imported=importer)
        }
    )
    assert cycles == []


def test_imports_run_at_the_top_of_modules():
    """An import inside a function hides a dependency (often a cycle); the few allowed
    ones say why on the line above."""
    hidden = []
    for package in PACKAGES:
        for path in Path(package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        above = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                        if not above.startswith("#") and not _previous_is_import(lines, inner):
                            hidden.append(f"{path}:{inner.lineno}")
    assert hidden == []


def _previous_is_import(lines: list[str], node) -> bool:
    """Several imports in a row share the reason written above the first."""
    before = [line.strip() for line in lines[: node.lineno - 1] if line.strip()]
    return bool(before) and before[-1].startswith(("from ", "import "))
