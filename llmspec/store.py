"""The content-addressed result store under `.llmspec/` and the run lock.

Each finished job's output is appended to `.llmspec/store/records.pack` the moment it finishes,
before the lockfile is touched: a crash loses at most the jobs still running (and the one being
written), and the next apply finds everything else by key. Jobs that produce folders (fine-tuned
weights, indices) store them as trees under `.llmspec/trees/<key>/`, moved in by one rename. The
folder is machine-local and gitignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import mmap
import os
import socket
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc
from llmspec.hashing import canonical

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
    """Job outputs by content key, appended to one pack file with an index beside it.

    `.llmspec/store/records.pack` holds one record per line (canonical JSON: job, kind, key,
    output, digest, meta); `.llmspec/store/records.idx` one line per record, `<key hex>
    <offset> <length> <crc32>`, appended after the record itself. Nothing is fsynced (the lock
    is the record of an apply; a lost store entry only means its job runs again), so a crash or
    a power cut can leave a record or an index line cut short, or blocks of zeros: a record is
    counted only when its index line checks out and the record ends where the line says, with
    its newline, and a later writer first ends a torn last line, so damage stays within the
    entry being written. Appending one line costs a write, where a file per record cost a
    create and a rename (bench/apply_overhead.py: part 3).

    Entries written one file per record (`.llmspec/store/<kk>/<key>.json`, before the pack)
    are still read."""

    def __init__(self, root: Path):
        self.root = Path(root) / STATE_DIR
        self.objects = self.root / "store"
        self.pack = self.objects / "records.pack"
        self.index = self.objects / "records.idx"
        self._entries: dict[str, tuple[int, int]] = {}  # key hex -> (offset, length)
        self._read_to = 0  # bytes of the index read so far (whole lines only)
        self._fds: dict[Path, int] = {}  # pack and index, open for appending
        weakref.finalize(self, _close_all, self._fds)

    def _path(self, key: str) -> Path:
        h = key.split(":", 1)[-1]
        return self.objects / h[:2] / f"{h}.json"

    # -- the index ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read the index lines appended since the last read (by anyone)."""
        try:
            with self.index.open("rb") as fh:
                fh.seek(self._read_to)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a last line without its newline may still be written
        for line in data[:end].split(b"\n"):
            entry = _index_entry(line)
            if entry is not None:
                self._entries[entry[0]] = (entry[1], entry[2])
        self._read_to += end

    def keys(self) -> set[str]:
        """Keys of the entries that look whole: the index line checks out and the pack holds
        the record's last byte, its newline, where the line says. One byte is read per entry,
        no record is parsed, so this stays cheap on a large store."""
        if not self.objects.is_dir():
            return set()
        self._refresh()
        out = set()
        if self._entries:
            try:
                fd = os.open(self.pack, os.O_RDONLY)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    size = os.fstat(fd).st_size
                    view = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b""
                    try:
                        for h, (offset, length) in self._entries.items():
                            end = offset + length
                            if length and end <= size and view[end - 1] == 10:  # b"\n"
                                out.add(f"sha256:{h}")
                    finally:
                        if size:
                            view.close()  # type: ignore[union-attr]
                finally:
                    os.close(fd)
        for p in self.objects.glob("*/*.json"):  # entries written before the pack
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
        h = key.split(":", 1)[-1]
        if h not in self._entries:
            self._refresh()
        data = None
        if h in self._entries:
            offset, length = self._entries[h]
            try:
                fd = os.open(self.pack, os.O_RDONLY)
                try:
                    raw = os.pread(fd, length, offset)
                finally:
                    os.close(fd)
                data = _record(raw, key) if len(raw) == length else None
            except OSError:
                data = None
        if data is None:
            try:
                data = _record(self._path(key).read_bytes(), key)
            except OSError:
                return None
        if data is None:
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
        """Append a job's output; `meta` (timings, hosts) is kept but not part of the digest."""
        body = canonical(output)  # serialised once: for the digest and for the record
        d = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        # the record's canonical JSON (keys sorted: digest, job, key, kind, meta, output)
        head = canonical({"digest": d, "job": job, "key": key, "kind": kind, "meta": meta or {}})
        line = f'{head[:-1]},"output":{body}}}\n'.encode()  # canonical JSON holds no raw newline
        end = self._append(self.pack, line)
        h = key.split(":", 1)[-1]
        offset = end - len(line)
        self._append(self.index, _index_line(h, offset, len(line)))
        self._entries[h] = (offset, len(line))
        return Stored(job, kind, key, output, d, meta or {})

    def _append(self, path: Path, data: bytes) -> int:
        """Append `data` as one write; return the file's size after it. A last line that an
        earlier writer left without its newline (it was killed) is ended first, so it cannot
        run into this one. The file stays open for the next write (`close`)."""
        fd = self._fds.get(path)
        if fd is None:
            self.objects.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._fds[path] = fd
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return os.lseek(fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        """Close the files `put` keeps open (also done when the store is collected)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def records(self) -> Iterator[Stored]:
        """Every readable entry (the latest record of each key): for tools and tests."""
        for key in sorted(self.keys()):
            s = self.get(key)
            if s is not None:
                yield s

    # -- folders ------------------------------------------------------------------------------

    def _tree(self, key: str) -> Path:
        return self.root / "trees" / key.split(":", 1)[-1]

    def put_tree(self, key: str, src: Path) -> str:
        """Move the folder `src` (fine-tuned weights, an index) into the store under `key`;
        return its digest (of every file's path and content). The move is a rename, so a
        reader sees the whole folder or none of it; `src` must be on the same file system
        (make it under `tmp_dir()`)."""
        from llmspec.hashing import HashCache, digest, tree_digests

        d = digest(tree_digests(src, HashCache(None)))
        target = self._tree(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an earlier run stored the same key: same inputs, keep it
            import shutil

            shutil.rmtree(src, ignore_errors=True)
            return d
        os.replace(src, target)
        return d

    def tree(self, key: str) -> Path | None:
        """The stored folder of `key`, or None."""
        target = self._tree(key)
        return target if target.is_dir() else None

    def tmp_dir(self) -> Path:
        """A fresh folder on the store's file system, for building a tree to `put_tree`."""
        import tempfile

        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="tree-", dir=base))

    def cache_path(self, name: str) -> Path:
        return self.root / "cache" / name


def _close_all(fds: dict[Path, int]) -> None:
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:
            pass


def _index_line(h: str, offset: int, length: int) -> bytes:
    """`<key hex> <offset> <length> <crc32 of what precedes>`: a line cut short, or run into
    another, fails its check.

    >>> _index_line("ab", 0, 10)
    b'ab 0 10 1cb29025\\n'
    """
    body = f"{h} {offset} {length}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def _index_entry(line: bytes) -> tuple[str, int, int] | None:
    """(key hex, offset, length) of an index line, or None when it does not check out.

    >>> _index_entry(_index_line("ab", 0, 10).strip()), _index_entry(b"ab 0 1 1cb29025")
    (('ab', 0, 10), None)
    """
    body, _, crc = line.rpartition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body) or len(crc) != 8:
            return None
        h, offset, length = body.decode("ascii").split(" ")
        return h, int(offset), int(length)
    except ValueError:
        return None


def _record(raw: bytes, key: str) -> dict[str, Any] | None:
    """A stored record, or None when it is damaged or not the record of `key`."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    if not all(k in data for k in ("job", "kind", "output", "digest")):
        return None
    return data


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
