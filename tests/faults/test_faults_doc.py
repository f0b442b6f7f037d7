"""docs/faults.md stays true: every row names an existing test, every fault and secret test has a row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "faults.md"
COVERED_DIRS = ("tests/faults", "tests/security")
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([\w-]+)\])?`")


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _references() -> list[tuple[str, str, str]]:
    return REFERENCE.findall(DOC.read_text())


def test_every_row_names_an_existing_test():
    refs = _references()
    assert len(refs) >= 20
    for path, name, _ in refs:
        assert (PROJECT_ROOT / path).exists(), path
        assert name in _test_functions(PROJECT_ROOT / path), f"{path}::{name} does not exist"


def test_every_fault_and_secret_test_has_a_row():
    documented = {(path, name) for path, name, _ in _references()}
    for directory in COVERED_DIRS:
        for path in sorted((PROJECT_ROOT / directory).glob("test_*.py")):
            rel = str(path.relative_to(PROJECT_ROOT))
            for name in _test_functions(path) - {
                "test_every_row_names_an_existing_test",
                "test_every_fault_and_secret_test_has_a_row",
                "test_every_bad_input_case_has_a_row",
            }:
                assert (rel, name) in documented, f"{rel}::{name} has no row in docs/faults.md"


def test_every_bad_input_case_has_a_row():
    from test_bad_input import CASES

    documented = {
        param
        for path, name, param in _references()
        if name == "test_bad_input_is_refused_before_any_ray_cluster_starts"
    }
    assert documented == set(CASES)
