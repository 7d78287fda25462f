"""Modules stay small and single-purpose."""

from __future__ import annotations

from tests.conftest import REPO

MAX_LINES = 600


def test_every_module_is_under_600_lines() -> None:
    big = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "llmspec").rglob("*.py")
        if (n := len(p.read_text().splitlines())) >= MAX_LINES
    }
    assert not big, f"split these modules: {big}"
