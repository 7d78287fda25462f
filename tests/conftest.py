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


EXAMPLE_MODELS = {  # as scripts/example builds them
    "tiny": {"seed": 7},
    "tiny-llama": {"arch": "llama", "seed": 3},
    "tiny-judge": {"seed": 11, "max_positions": 2048},
}


@pytest.fixture(scope="session")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example project's tiny models, built once per test session."""
    from llmspec.tinymodel import build_tiny_model

    base = tmp_path_factory.mktemp("models")
    return {name: build_tiny_model(base / name, **kw) for name, kw in EXAMPLE_MODELS.items()}


@pytest.fixture(scope="session")
def tiny_model_dir(example_models: dict[str, Path]) -> Path:
    """The example project's main tiny model (GPT-2, seed 7)."""
    return example_models["tiny"]


def copy_example(dest: Path, models: dict[str, Path]) -> Path:
    """specs/ copied to `dest` with its tiny models in place (its lock, but no store)."""
    import shutil

    shutil.copytree(REPO / "specs", dest, ignore=shutil.ignore_patterns("models", ".llmspec"))
    (dest / "models").mkdir()
    for name, path in models.items():
        shutil.copytree(path, dest / "models" / name)
    return dest


@pytest.fixture
def example_project(tmp_path: Path, example_models: dict[str, Path]) -> Path:
    """A private copy of specs/ with its tiny models in place."""
    return copy_example(tmp_path / "specs", example_models)


@pytest.fixture(scope="session")
def applied_example(
    tmp_path_factory: pytest.TempPathFactory, example_models: dict[str, Path]
) -> Path:
    """The example project applied once (inline), its store, lock and run history in place.
    Shared by the session: copy it (`copy_project`) before changing anything."""
    from click.testing import CliRunner

    from llmspec.cli import main

    dest = copy_example(tmp_path_factory.mktemp("applied") / "specs", example_models)
    (dest / "llmspec.lock").unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["apply", str(dest), "--runner", "inline", "--quiet"])
    assert r.exit_code in (0, 3), r.output
    return dest


def copy_project(src: Path, dest: Path) -> Path:
    """A copy of a project folder with its .llmspec/ state (store, trees, history)."""
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


from tests.browser import browser  # noqa: E402,F401  (the headless Chromium fixture)
