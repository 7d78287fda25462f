"""The state resolve's checks share: the project, where each part was written, the diagnostics
found so far, and what the checks resolved for later stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.errors import Diagnostic, Loc, did_you_mean
from llmspec.load import KeyPath
from llmspec.spec import SINGULAR


class Checker:
    def __init__(self, vp: Any, root: Path, cache: Any = None):
        from llmspec.hashing import HashCache

        self.p = vp.spec
        self.sources = vp.sources
        self.data = vp.data
        self.root = root
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        # resolved for later stages
        self.schemas: dict[str, Any] = {}
        self.schema_files: dict[str, Any] = {}  # schema name -> its file's SourceFile
        self.invalid_schemas: set[str] = set()  # reported already (E033, E034)
        self.columns: dict[str, frozenset[str]] = {}
        self.counts: dict[str, int] = {}
        self.cache = cache if cache is not None else HashCache(None)
        self.scans: dict[str, Any] = {}  # dataset -> data.Scan: its file read once
        self.knowledge_files: dict[str, tuple[Path, ...]] = {}
        self.gates: dict[str, tuple[Any, ...]] = {}
        self.metrics: dict[str, list[dict[str, Any] | None]] = {}

    def loc(self, path: KeyPath, key: bool = False) -> Loc:
        return self.sources.loc(path, key=key)

    def error(self, code: str, msg: str, path: KeyPath, hint: str | None = None, **kw: Any) -> None:
        self.diags.append(Diagnostic(code, msg, self.loc(path, kw.pop("key", False)), hint, **kw))

    def warn(self, code: str, msg: str, path: KeyPath, hint: str | None = None) -> None:
        self.warnings.append(Diagnostic(code, msg, self.loc(path), hint, severity="warning"))

    def ref(self, section: str, name: str | None, path: KeyPath) -> bool:
        """True when `name` is declared under `section`; an E020 with did-you-mean if not."""
        if name is None:
            return False
        known = getattr(self.p, section)
        if name in known:
            return True
        self.error(
            "E020",
            f"unknown {SINGULAR[section]} `{name}`",
            path,
            did_you_mean(name, known) or f"declare it under `{section}:`",
        )
        return False

    def inside(self, target: Path) -> bool:
        """Whether `target`, with every symlink followed, is inside the project folder."""
        try:
            target.resolve().relative_to(self.root.resolve())
            return True
        except (ValueError, OSError):
            return False

    def check_path(
        self,
        rel: str,
        path: KeyPath,
        what: str,
        hint: str | None = None,
        exist: bool = True,
    ) -> Path | None:
        """The file or folder `rel` names, refused when it leaves the project (E030) or, with
        `exist`, does not exist (E031)."""
        if "\0" in rel or any(ord(ch) < 32 for ch in rel):
            self.error("E013", f"{what} `{rel!r}` has a control character", path)
            return None
        target = self.root / rel
        if Path(rel).is_absolute() or not self.inside(target):
            self.error(
                "E030",
                f"{what} `{rel}` is outside the project folder",
                path,
                "keep every file the project reads inside its folder (symlinks are followed)",
            )
            return None
        if exist and not target.exists():
            self.error("E031", f"{what} `{rel}` does not exist", path, hint)
            return None
        return target
