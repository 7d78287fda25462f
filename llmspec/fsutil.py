"""Writing files so that a crash leaves the old content or the new, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(
    path: str | Path,
    data: bytes,
    durable: bool = True,
    tmp_dir: str | Path | None = None,
    make_dirs: bool = True,
) -> None:
    """Write `data` to `path` through a temp file in the same folder, then rename.

    Readers see the old file or the new one, never a mix, even if the process is killed.
    `durable` also fsyncs the file and its folder, so the rename survives a power loss too.
    `tmp_dir` (same file system) holds the temp file, so a kill before the rename leaves
    nothing beside `path`.
    """
    path = Path(path)
    where = Path(tmp_dir) if tmp_dir is not None else path.parent
    if make_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=where)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
