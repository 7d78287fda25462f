from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# apply runs in-process unless a test asks for Ray (`--runner local`): Ray starts in seconds
os.environ.setdefault("LLMSPEC_RUNNER", "inline")

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files from current output"
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with a golden file; `pytest --update-golden` rewrites it."""
    update = request.config.getoption("--update-golden")

    def check(path: Path, actual: str) -> None:
        if update or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            if not update:
                pytest.fail(f"golden file {path} did not exist; written, review and commit it")
            return
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from {path} (rerun with --update-golden)"

    return check


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project's tiny model, built once per test session."""
    from llmspec.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=7)


@pytest.fixture
def example_project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A private copy of specs/ with its tiny model in place."""
    import shutil

    dest = tmp_path / "specs"
    shutil.copytree(REPO / "specs", dest, ignore=shutil.ignore_patterns("models", ".llmspec"))
    (dest / "models").mkdir()
    shutil.copytree(tiny_model_dir, dest / "models" / "tiny")
    return dest


@pytest.fixture(scope="session")
def applied_example(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The example project applied once (inline), its store, lock and run history in place.
    Shared by the session: copy it (`copy_project`) before changing anything."""
    import shutil

    from click.testing import CliRunner

    from llmspec.cli import main

    dest = tmp_path_factory.mktemp("applied") / "specs"
    shutil.copytree(REPO / "specs", dest, ignore=shutil.ignore_patterns("models", ".llmspec"))
    shutil.copytree(tiny_model_dir, dest / "models" / "tiny")
    (dest / "llmspec.lock").unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["apply", str(dest), "--runner", "inline", "--quiet"])
    assert r.exit_code == 0, r.output
    return dest


def copy_project(src: Path, dest: Path) -> Path:
    """A copy of a project folder with its .llmspec/ state (store, trees, history)."""
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


from tests.browser import browser  # noqa: E402,F401  (the headless Chromium fixture)
