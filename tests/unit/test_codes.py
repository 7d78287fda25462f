"""Every diagnostic code llmspec emits is documented, every documented code is emitted, and
every code `validate` can report has a golden case (or a reason it cannot have one)."""

from __future__ import annotations

import re

from tests.conftest import GOLDEN, REPO

NO_GOLDEN_CASE = {
    "E007": "a 1 MiB spec file: tests/unit/test_load.py checks the cap",
    "E008": "the path itself is missing: tests/unit/test_cli.py",
    "E037": "10,000 files: tests/unit/test_resolve.py",
    "E038": "a FIFO or directory: tests/unit/test_resolve.py",
    "E039": "pypdf is installed where tests run: tests/unit/test_rag.py hides it",
    "E067": "faiss-cpu is installed where tests run: tests/unit/test_rag.py hides it",
}


def _emitted() -> set[str]:
    codes: set[str] = set()
    for path in (REPO / "llmspec").rglob("*.py"):
        codes |= set(re.findall(r'"([EW][0-9]{3})"', path.read_text()))
    return codes


def _documented() -> dict[str, str]:
    table = (REPO / "docs" / "diagnostics.md").read_text()
    return dict(re.findall(r"^\| ([EW][0-9]{3}) \| (\w+) \|", table, re.M))


def _golden() -> set[str]:
    codes: set[str] = set()
    for f in (GOLDEN / "diagnostics").glob("*/expected.txt"):
        codes |= set(re.findall(r"(?:error|warning)\[([EW][0-9]{3})\]", f.read_text()))
    return codes


def test_codes_are_documented_both_ways() -> None:
    emitted, documented = _emitted(), _documented()
    assert emitted - set(documented) == set(), "emitted but not in docs/diagnostics.md"
    assert set(documented) - emitted == set(), "documented but never emitted"


def test_validate_time_codes_have_golden_cases() -> None:
    validate_time = {c for c, stage in _documented().items() if stage in ("load", "validate",
                     "resolve")}  # fmt: skip
    missing = validate_time - _golden() - set(NO_GOLDEN_CASE)
    assert not missing, f"add a broken project under tests/golden/diagnostics/ for {missing}"
