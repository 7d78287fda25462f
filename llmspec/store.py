"""The content-addressed result store under `.llmspec/` and the run lock.

Each finished job's output is written, atomically, to `.llmspec/store/<kk>/<key>.json` the moment
it finishes, before the lockfile is touched: a crash loses at most the jobs still running, and
the next apply finds everything else by key. Jobs that produce folders (fine-tuned weights,
indices) store them as trees under `.llmspec/trees/<key>/`, moved in by one rename. The folder
is machine-local and gitignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc
from llmspec.fsutil import write_atomic
from llmspec.hashing import canonical, digest

STATE_DIR = ".llmspec"


@dataclass(frozen=True)
class Stored:
    job: str
    kind: str
    key: str
    output: Any
    digest: str
    meta: dict[str, Any]


class Store:
    """Job outputs by content key."""

    def __init__(self, root: Path):
        self.root = Path(root) / STATE_DIR
        self.objects = self.root / "store"
        self._made: set[Path] = set()  # folders known to exist: one mkdir each, not per write

    def _path(self, key: str) -> Path:
        h = key.split(":", 1)[-1]
        return self.objects / h[:2] / f"{h}.json"

    def keys(self) -> set[str]:
        """Keys of the entries that look whole. An entry cut short by a power cut (the store is
        not fsynced) does not end its JSON object: it counts as missing and its job runs again.
        Only the last byte is read, so this stays cheap on a large store."""
        if not self.objects.is_dir():
            return set()
        out = set()
        for p in self.objects.glob("*/*.json"):
            try:
                with p.open("rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    whole = fh.read(1) == b"}"
            except OSError:
                whole = False
            if whole:
                out.add(f"sha256:{p.stem}")
        return out

    def get(self, key: str) -> Stored | None:
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return None  # a damaged entry is as good as a missing one: the job runs again
        return Stored(
            data["job"],
            data["kind"],
            data["key"],
            data["output"],
            data["digest"],
            data.get("meta", {}),
        )

    def put(self, job: str, kind: str, key: str, output: Any, meta: dict | None = None) -> Stored:
        """Write a job's output; `meta` (timings, hosts) is kept but not part of the digest."""
        d = digest(output)
        record = {
            "job": job,
            "kind": kind,
            "key": key,
            "output": output,
            "digest": d,
            "meta": meta or {},
        }
        # Not fsynced: a store entry lost to a power cut is missing or unreadable, and a missing
        # entry only means its job runs again. The lock, which is the record, is fsynced.
        path = self._path(key)
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        write_atomic(path, canonical(record).encode(), durable=False, make_dirs=False)
        return Stored(job, kind, key, output, d, meta or {})

    # -- folders ------------------------------------------------------------------------------

    def tree_path(self, key: str) -> Path:
        """Where the folder of `key` is (or will be) kept: known before the job runs, so a job
        that reads a folder finds it by its producer's key."""
        return self.root / "trees" / key.split(":", 1)[-1]

    def put_tree(self, key: str, src: Path) -> str:
        """Move the folder `src` (fine-tuned weights, an index) into the store under `key`;
        return its digest (of every file's path and content). The move is a rename, so a
        reader sees the whole folder or none of it; `src` must be on the same file system
        (make it under `tmp_dir()`)."""
        from llmspec.hashing import HashCache, digest, tree_digests

        d = digest(tree_digests(src, HashCache(None)))
        target = self.tree_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an earlier run stored the same key: same inputs, keep it
            import shutil

            shutil.rmtree(src, ignore_errors=True)
            return d
        os.replace(src, target)
        return d

    def tree(self, key: str) -> Path | None:
        """The stored folder of `key`, or None."""
        target = self.tree_path(key)
        return target if target.is_dir() else None

    def tmp_dir(self) -> Path:
        """A fresh folder on the store's file system, for building a tree to `put_tree`."""
        import tempfile

        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="tree-", dir=base))

    def cache_path(self, name: str) -> Path:
        return self.root / "cache" / name


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str


class RunLock:
    """One apply at a time per project: an flock on `.llmspec/run.lock`.

    The kernel drops the flock when its process dies, so a lock left by a killed apply is stale
    by construction: the next apply takes it and says so.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / STATE_DIR / "run.lock"
        self.fd: int | None = None
        self.previous: Holder | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            who = (
                f"pid {holder.pid} on {holder.host}, since {holder.since}"
                if holder
                else "another process"
            )
            raise LlmspecError.one(
                "E070",
                f"another apply is running on this project ({who})",
                Loc(str(self.path)),
                "wait for it to finish, or stop it; a killed apply releases the lock by itself",
            ) from None
        self.previous = _read_holder(fd)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[RunLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


def _read_holder(fd: int) -> Holder | None:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw) if raw.strip() else None
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"])) if data else None
    except (ValueError, KeyError, TypeError, OSError):
        return None
