"""Headless Chromium for tests of pages llmspec serves or writes (the hub, HTML reports).

Debian's `chromium` package, driven by Playwright's Python client pointed at that binary: no
browser is downloaded (`playwright install` is never run). The `browser` fixture (one browser
per test module) skips with the reason when chromium is absent on a developer's machine; under
CI (`CI` set) it fails instead, because `.ci/run` installs chromium and the tests must run.

    def test_page(browser):
        visit = open_page(browser, "http://127.0.0.1:8765/")
        wait_ready(visit.page, "#/")
        assert visit.errors == []
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """`LLMSPEC_CHROMIUM`, or Debian's `chromium` on PATH."""
    path = os.environ.get("LLMSPEC_CHROMIUM") or shutil.which("chromium")
    return path if path and Path(path).exists() else None


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; .ci/run installs it, so CI must run the browser tests")
    pytest.skip(f"{why} (apt-get install chromium; pip install playwright)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright `Browser`), shared by a module's tests. Not by the
    session: while Playwright's sync API is open, its event loop counts as running in this
    thread, and `asyncio.run` in any other test would fail."""
    path = chromium_path()
    if path is None:
        _missing("Debian's chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright's Python client is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    """A page and every problem it reported: console errors, uncaught exceptions, failed
    requests and HTTP errors."""

    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def open_page(browser: Any, url: str, width: int = 1280, height: int = 900) -> Visit:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    visit = Visit(page, context)
    page.on(
        "console",
        lambda m: visit.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: visit.errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: visit.errors.append(f"request failed: {r.url}"))
    page.on(
        "response",
        lambda r: visit.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    page.goto(url, wait_until="load")
    return visit


def wait_ready(page: Any, marker: str) -> None:
    """Wait until the page says it has rendered `marker` (`<body data-ready="...">`); a
    selector, not a script, so pages with a strict content security policy work too."""
    page.wait_for_selector(f'body[data-ready="{marker}"]', state="attached", timeout=TIMEOUT_MS)
