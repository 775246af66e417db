"""docs/promises.md stays honest: every row names a test, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "promises.md"
REFERENCE = re.compile(r"`((?:e2e|unit|integration|devserver)/[\w/]+\.py)(?:::(\w+))?")


def _rows() -> list[str]:
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.startswith("| ") and not line.startswith("| ---")][1:]


def test_every_row_names_a_test() -> None:
    """A promise row without a test reference (a path under tests/, or `ops`) is a promise nobody proves."""
    headers = {"| promise | test |", "| metric | test |", "| defect | fixed by | e2e test |"}
    bare = [row for row in _rows() if row not in headers and not (REFERENCE.search(row) or "`ops`" in row)]
    assert bare == []


def test_every_named_test_exists() -> None:
    """Each `path.py::test_name` in the table is a file under tests/ that defines that test."""
    missing = []
    for path, name in REFERENCE.findall(TABLE.read_text(encoding="utf-8")):
        source = ROOT / "tests" / path
        if not source.is_file() or (name and f"def {name}(" not in source.read_text(encoding="utf-8")):
            missing.append(f"{path}::{name}" if name else path)
    assert missing == []
