from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmspec.errors import Diagnostic, Loc, render

SECRET = "API_KEY=hunter2"


def _outside_and_inside(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside.yaml"
    outside.write_text(SECRET + "\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "llmspec.yaml").write_text("name: demo\n")
    return outside, root


def test_source_lines_shown_by_default(tmp_path: Path) -> None:
    outside, root = _outside_and_inside(tmp_path)
    d = Diagnostic("E001", "bad", Loc(str(root / "llmspec.yaml"), 1, 1, 5), "fix it")
    assert "1 | name: demo" in render([d])
    assert "1 | name: demo" in render([d], allowed_root=root)
    assert SECRET in render([Diagnostic("E001", "bad", Loc(str(outside), 1, 1))])


def test_no_line_of_a_file_outside_the_root_is_shown(tmp_path: Path) -> None:
    outside, root = _outside_and_inside(tmp_path)
    link = root / "link.yaml"
    link.symlink_to(outside)
    diagnostics = [
        Diagnostic("E001", "bad", Loc(str(outside), 1, 1)),
        Diagnostic("E001", "bad", Loc(str(link), 1, 1)),  # inside by name, outside by target
        Diagnostic("E001", "bad", Loc(str(root / ".." / "outside.yaml"), 1, 1)),
    ]
    out = render(diagnostics, allowed_root=root)
    assert SECRET not in out
    assert out.count("error[E001]") == 3
    # also when the caller hands the text over
    assert SECRET not in render(diagnostics, {str(outside): SECRET}, allowed_root=root)


@pytest.mark.timeout(10)
def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "llmspec.yaml"
    os.mkfifo(fifo)  # opening it to read would block: nobody writes
    for loc in (Loc(str(fifo)), Loc(str(fifo), 1, 1)):
        assert render([Diagnostic("E008", "not a file", loc)]).startswith(str(fifo))
