"""The house rules that import-linter does not check: small functions, and packages that say their job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit
MAX_FUNCTION_LINES = 60


def _functions(root: Path) -> list[tuple[str, int]]:
    found = []
    for file in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                found.append((f"{file.relative_to(REPO)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_no_function_is_over_60_lines() -> None:
    functions = _functions(REPO / "pipeline") + _functions(REPO / "connectors")
    assert len(functions) > 300  # the walk found the code
    assert [(name, n) for name, n in functions if n > MAX_FUNCTION_LINES] == []


def test_every_package_says_its_job_and_what_it_may_import() -> None:
    packages = sorted(p for root in ("pipeline", "connectors") for p in (REPO / root).rglob("__init__.py"))
    assert len(packages) >= 10
    for init in packages:
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        if init.parent == REPO / "pipeline":
            continue  # the top package: the Python API's front door
        assert doc and "May import" in doc, f"{init.relative_to(REPO)} has no docstring saying what it may import"
