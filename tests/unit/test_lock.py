from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmspec.errors import LlmspecError
from llmspec.lock import LOCK_NAME, Lock, parse_lock, read_lock, render_lock


def _lock_text() -> str:
    return render_lock(
        Lock(project="demo", toolchain={"llmspec": "0.1", "python": "3.11"})
    ).decode()


def _error(root: Path) -> LlmspecError:
    with pytest.raises(LlmspecError) as e:
        read_lock(root)
    assert len(e.value.diagnostics) == 1
    return e.value


def test_a_lock_reads_back(tmp_path: Path) -> None:
    assert read_lock(tmp_path) is None
    (tmp_path / LOCK_NAME).write_text(_lock_text())
    assert read_lock(tmp_path) == Lock(
        project="demo", toolchain={"llmspec": "0.1", "python": "3.11"}
    )


def test_merge_conflicts_are_named_at_their_line(tmp_path: Path) -> None:
    lines = _lock_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"python"' in line)
    ours, theirs = lines[at], lines[at].replace("3.11", "3.12")
    lines[at : at + 1] = ["<<<<<<< HEAD", ours, "=======", theirs, ">>>>>>> feature"]
    (tmp_path / LOCK_NAME).write_text("\n".join(lines) + "\n")
    d = _error(tmp_path).diagnostics[0]
    assert d.code == "E084"
    assert d.message == (
        f"merge conflict in llmspec.lock at line {at + 1}: resolve it, then run `llmspec apply`"
    )
    assert (d.loc.line, d.loc.col) == (at + 1, 1) and "--theirs" in d.hint
    # a conflict marker inside a JSON string is not a conflict
    text = json.dumps({"project": "<<<<<<< HEAD"}, indent=2)
    assert parse_lock(text, "llmspec.lock").project == "<<<<<<< HEAD"


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b'{"project": "demo",\n "toolchain": {"a": "\xff"}}\n', 2),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, 1),  # nested past the recursion limit
        (b'{"project": "demo",\n  "models": }\n', 2),  # plain JSON syntax error, now located
        (b'{"project": "demo", "models": {"m": {"n": ' + b"9" * 5000 + b"}}}", 1),
        (b'{"project": "demo", "models": {"m": "\\ud800"}}', 1),  # a lone surrogate
    ],
)
def test_damaged_locks_are_located_errors(tmp_path: Path, content: bytes, line: int) -> None:
    (tmp_path / LOCK_NAME).write_bytes(content)
    d = _error(tmp_path).diagnostics[0]
    assert (d.code, d.loc.line) == ("E080", line)
    assert d.hint


def test_a_lock_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).mkdir()
    d = _error(tmp_path).diagnostics[0]
    assert d.code == "E080" and "not a regular file" in d.message


@pytest.mark.timeout(10)
def test_a_lock_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / LOCK_NAME)
    assert _error(tmp_path).diagnostics[0].code == "E080"


def test_parse_lock_takes_bytes_too() -> None:
    assert parse_lock(_lock_text().encode(), "llmspec.lock").project == "demo"
