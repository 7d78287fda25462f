"""Content digests: canonical JSON and files, with a cache so weights are hashed once.

>>> digest({"b": 1, "a": [1.0, "x"]}) == digest({"a": [1.0, "x"], "b": 1})
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from llmspec.fsutil import write_atomic

CHUNK = 1 << 20


def canonical(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_enc)


def _enc(obj: Any) -> Any:
    if isinstance(obj, (tuple, set, frozenset)):
        return sorted(obj) if isinstance(obj, (set, frozenset)) else list(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", by_alias=True)
    raise TypeError(f"cannot hash {type(obj).__name__}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: Any) -> bool:
    """Whether a JSON value holds text that is not Unicode (a lone surrogate from a `\\ud800`
    escape, which JSON allows): such a value cannot be digested or written as UTF-8.

    >>> has_lone_surrogate({"a": ["ok", chr(0xD800)]}), has_lone_surrogate({"a": "é"})
    (True, False)
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def digest(obj: Any) -> str:
    """`sha256:<hex>` of the canonical JSON of `obj`."""
    return "sha256:" + hashlib.sha256(canonical(obj).encode()).hexdigest()


def text_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def file_digest(data: bytes) -> str:
    """The digest of a file's bytes, as `HashCache.file` computes it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(d: str, n: int = 12) -> str:
    return d.split(":", 1)[-1][:n]


class HashCache:
    """File digests cached by (path, size, mtime): re-hashing gigabytes of weights on every
    `plan` would make it slow. The cache lives in `.llmspec/cache/` and is machine-local."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.scans: dict[str, Any] = {}  # file digest -> data.Scan, this process
        self.dirty = False
        if path is not None and path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except (ValueError, OSError):
                self.entries = {}

    def file(self, p: Path) -> str:
        st = p.stat()
        key = str(p.resolve())
        hit = self.entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256()
        with p.open("rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
        d = "sha256:" + h.hexdigest()
        self.entries[key] = [st.st_size, st.st_mtime_ns, d]
        self.dirty = True
        return d

    def known(self, p: Path) -> str | None:
        """The digest of `p` when the cache holds it for the file's current size and mtime."""
        try:
            st = p.stat()
        except OSError:
            return None
        hit = self.entries.get(str(p.resolve()))
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        return None

    def remember(self, p: Path, st: os.stat_result, d: str) -> None:
        """Record `d` as the digest of `p` as it was at `st` (computed while reading it)."""
        self.entries[str(p.resolve())] = [st.st_size, st.st_mtime_ns, d]
        self.dirty = True

    def _scan_path(self, file_digest: str) -> Path | None:
        if self.path is None:
            return None
        return self.path.parent / "rows" / f"{short(file_digest, 64)}.json"

    def dataset(self, p: Path, fmt: str, shown: str | None = None) -> Any:
        """A dataset file's `data.Scan` (file and row digests, columns, row offsets): read from
        the cache when the file is unchanged (by size and mtime, then by content), else by one
        pass over the file, kept in memory and in `.llmspec/cache/rows/`."""
        from llmspec import data

        d = self.known(p)
        if d is not None:
            if d in self.scans:
                return self.scans[d]
            found = self._read_scan(d)
            if found is not None:
                self.scans[d] = found
                return found
        before = p.stat()
        scan = data.scan_dataset(p, fmt, shown)
        after = p.stat()
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            self.remember(p, after, scan.file)  # the bytes it read are the file's
        self.scans[scan.file] = scan
        target = self._scan_path(scan.file)
        if target is not None:
            try:
                write_atomic(target, json.dumps(scan.to_json()).encode(), durable=False)
            except OSError:
                pass  # a read-only checkout still plans; it only reads the file again next time
        return scan

    def _read_scan(self, file_digest: str) -> Any:
        from llmspec.data import Scan

        target = self._scan_path(file_digest)
        if target is None or not target.is_file():
            return None
        try:
            scan = Scan.from_json(json.loads(target.read_text()))
        except (ValueError, OSError):
            return None
        return scan if scan is not None and scan.file == file_digest else None

    def save(self) -> None:
        if self.path is not None and self.dirty:
            write_atomic(self.path, json.dumps(self.entries, sort_keys=True).encode())
            self.dirty = False


def tree_digests(root: Path, cache: HashCache, files: list[Path] | None = None) -> dict[str, str]:
    """Digests of files under `root`, keyed by their path relative to it (sorted, posix)."""
    if files is None:
        files = [Path(dp) / f for dp, _, fs in os.walk(root) for f in fs]
    out = {}
    for f in sorted(files):
        rel = f.relative_to(root).as_posix()
        out[rel] = cache.file(f)
    return out
