"""The front half of every command: load, validate and resolve a project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.load import load_files
from llmspec.resolve import ResolvedProject, resolve_project
from llmspec.validate import validate_files


def project_root(path: str | Path) -> Path:
    """The folder that relative paths in the specs are resolved against."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def load_project(path: str | Path = ".", cache: Any = None) -> ResolvedProject:
    """Load, validate and resolve the project at `path` (a spec file or a folder of them);
    `cache` (a `HashCache`) keeps what was read of dataset files for compile and next time.

    >>> load_project("specs").spec.name  # doctest: +SKIP
    'support-bot'
    """
    root = project_root(path)
    files = load_files(path)
    return resolve_project(validate_files(files, root), root, cache)
