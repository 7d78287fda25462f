"""Reading dataset files: JSONL, CSV and JSON, with errors at `file:line`.

Datasets arrive in pull requests like specs do, so reading one is bounded whatever it holds:
only regular files are read (a FIFO would block `plan` forever, a device never ends), a file
is at most `MAX_DATASET_BYTES` (`MAX_JSON_DATASET_BYTES` for a `.json` file, read whole), a
JSONL line or CSV record at most `MAX_ROW_BYTES`, a row nests at most `MAX_ROW_DEPTH` levels
(later stages walk rows recursively) and holds only text that can be written as UTF-8 (a lone
surrogate from a `\\ud800` escape would break hashing later). Each refusal is a diagnostic at
the row's line: E032 for content that cannot be read, E037 for a size cap, E038 for a path
that is not a regular file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = p.write_text('{"q": "one"}\\n\\n{"q": "two"}\\n')
    >>> [r["q"] for r in read_rows(p, "jsonl")], jsonl_offsets(p)
    (['one', 'two'], [0, 14])
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llmspec.errors import LlmspecError, Loc

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}

MAX_DATASET_BYTES = 2 * 1024**3  # 2 GiB: beyond that, split the dataset into several files
MAX_JSON_DATASET_BYTES = 256 * 1024**2  # a .json dataset is parsed whole: keep it smaller
MAX_ROW_BYTES = 8 * 1024**2  # one JSONL line (bytes) or CSV record (characters)
MAX_ROW_DEPTH = 64  # nesting of lists and objects in one row, as for spec files

_SPLIT = "split it into several files (one dataset each), or move large values out of the rows"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


def dataset_format(path: str, declared: str | None) -> str | None:
    return declared or FORMATS.get(Path(path).suffix.lower())


def _too_big(shown: str, what: str, cap: int, line: int = 0) -> LlmspecError:
    return LlmspecError.one(
        "E037",
        f"{what} is larger than {_size(cap)}, the cap for datasets",
        Loc(shown, line, 1 if line else 0),
        _SPLIT,
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _regular(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise LlmspecError.one(
            "E038",
            f"dataset is {_kind(st.st_mode)}, not a regular file",
            Loc(shown),
            "a dataset is a .jsonl, .csv or .json file; point `path:` at one",
        )


def open_dataset(
    path: Path, shown: str | None = None, cap: int = MAX_DATASET_BYTES
) -> io.BufferedReader:
    """Open a dataset file for reading in binary, or raise `LlmspecError`: E038 when it is not
    a regular file (checked before opening, then again on what was opened, which is opened
    non-blocking, so that a FIFO, or a file swapped for one in between, cannot block), E037
    when it is larger than `cap`, E031 when it cannot be read. Reading past `cap` (a file that
    grows while it is read) raises E037 too. Anything that reads a dataset file (hashing it
    too) should open it here."""
    shown = shown or path.as_posix()
    try:
        _regular(os.stat(path), shown)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
        fd = os.open(path, flags)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    try:
        st = os.fstat(fd)
        _regular(st, shown)
        if st.st_size > cap:
            raise _too_big(shown, f"dataset file ({st.st_size:,} bytes)", cap)
        return io.BufferedReader(_Capped(os.fdopen(fd, "rb", buffering=0), cap, shown))
    except BaseException:
        os.close(fd)
        raise


class _Capped(io.RawIOBase):
    """A binary file that raises E037 once more than `cap` bytes were read from it."""

    def __init__(self, raw: IO[bytes], cap: int, shown: str):
        self._raw, self._cap, self._shown, self._read = raw, cap, shown, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        self._read += n or 0
        if self._read > self._cap:
            raise _too_big(self._shown, "dataset file", self._cap)
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def read_rows(path: Path, fmt: str, shown: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rows of a dataset file as dicts; raise `LlmspecError` at the bad line."""
    shown = shown or path.as_posix()
    if fmt == "jsonl":
        yield from _jsonl_rows(path, shown)
    elif fmt == "csv":
        yield from _csv_rows(path, shown)
    elif fmt == "json":
        yield from _json_rows(path, shown)
    else:
        raise LlmspecError.one("E032", f"unknown dataset format `{fmt}`", Loc(shown))


def _lines(fh: IO[bytes], shown: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a JSONL file, each at most `MAX_ROW_BYTES`."""
    n = 0
    while True:
        line = fh.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_ROW_BYTES:
            raise _too_big(shown, f"line {n}", MAX_ROW_BYTES, n)
        yield n, line


def _jsonl_rows(path: Path, shown: str) -> Iterator[dict[str, Any]]:
    try:
        with open_dataset(path, shown) as fh:
            for n, line in _lines(fh, shown):
                if line.strip():
                    yield parse_jsonl_line(line, Loc(shown, n, 1), first=n == 1)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None


def parse_jsonl_line(line: bytes, loc: Loc, first: bool = False) -> dict[str, Any]:
    """One JSONL line as a row, or E032 at `loc` (its column set where the problem is)."""
    if first and line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        col = len(line[: e.start].decode("utf-8", "replace")) + 1
        raise LlmspecError.one(
            "E032", "line is not valid UTF-8", Loc(loc.file, loc.line, col), "save it as UTF-8"
        ) from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise LlmspecError.one(
            "E032",
            f"invalid JSON: {e.msg}",
            Loc(loc.file, loc.line, e.colno),
            "each line of a .jsonl file is one JSON object",
        ) from None
    except RecursionError:
        raise _too_deep(loc) from None
    if not isinstance(row, dict):
        raise LlmspecError.one("E032", "a dataset row must be a JSON object", loc)
    check_row(row, loc, line)
    return row


def _too_deep(loc: Loc) -> LlmspecError:
    return LlmspecError.one(
        "E032",
        f"row nests lists and objects deeper than {MAX_ROW_DEPTH} levels",
        loc,
        "flatten the row: no prompt reads values that deep",
    )


def check_row(row: dict[str, Any], loc: Loc, raw: bytes | None = None) -> None:
    """Refuse a row nested deeper than `MAX_ROW_DEPTH`, or holding text that is not Unicode
    (a lone surrogate), with E032 at `loc` naming the column."""
    stack: list[tuple[Any, int, str]] = [(v, 1, k) for k, v in row.items()]
    stack += [(k, 1, k) for k in row]
    while stack:
        v, depth, column = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                m = _SURROGATE_ESCAPE.search(raw) if raw is not None else None
                col = m.start() + 1 if m else loc.col
                name = column if not _SURROGATE.search(column) else "?"
                raise LlmspecError.one(
                    "E032",
                    f"column `{name[:80]}` holds a lone surrogate (a `\\ud800`-`\\udfff` escape "
                    "without its pair), which is not Unicode text",
                    Loc(loc.file, loc.line, col),
                    "write the character itself, or both halves of its surrogate pair",
                )
            continue
        if isinstance(v, (list, dict)):
            if depth >= MAX_ROW_DEPTH:
                raise _too_deep(loc)
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in items:
                stack.append((x, depth + 1, column))
                if isinstance(k, str):
                    stack.append((k, depth + 1, column))


class _Records:
    """The lines of a CSV file for `csv.reader`, with each record's size and the line it
    starts on tracked (a quoted field spans lines)."""

    def __init__(self, fh: IO[str], shown: str):
        self.fh, self.shown = fh, shown
        self.line = 0  # lines read so far
        self.start = 1  # the line the current record starts on
        self.size = 0  # characters of the current record so far

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(MAX_ROW_BYTES + 1)
        if not line:
            raise StopIteration
        self.line += 1
        self.size += len(line)
        if self.size > MAX_ROW_BYTES:
            raise _too_big(
                self.shown, f"the CSV record on line {self.start}", MAX_ROW_BYTES, self.start
            )
        return line

    def next_record(self) -> None:
        self.start, self.size = self.line + 1, 0


def _csv_rows(path: Path, shown: str) -> Iterator[dict[str, Any]]:
    # csv's default field limit is 128 KiB; one field may be as large as one record
    csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_BYTES))
    lines: _Records | None = None
    try:
        with io.TextIOWrapper(open_dataset(path, shown), encoding="utf-8-sig", newline="") as fh:
            lines = _Records(fh, shown)
            reader = csv.reader(lines)
            header = next(reader, None)
            lines.next_record()
            if header is None:
                return
            for record in reader:
                if len(record) > len(header):
                    raise LlmspecError.one(
                        "E032",
                        "row has more fields than the header",
                        Loc(shown, lines.start, 1),
                    )
                row = dict(zip(header, record, strict=False))
                for missing in header[len(record) :]:
                    row.setdefault(missing, None)  # as csv.DictReader fills a short row
                if record:
                    yield row
                lines.next_record()
    except csv.Error as e:
        where = lines.start if lines is not None else 1
        raise LlmspecError.one(
            "E032",
            f"invalid CSV: {e}",
            Loc(shown, where, 1),
            "quote fields that hold commas, quotes or line breaks, and close every quote",
        ) from None
    except UnicodeDecodeError:
        where = _bad_utf8_line(path, shown)
        raise LlmspecError.one(
            "E032", "dataset is not valid UTF-8", Loc(shown, where, 1), "save it as UTF-8"
        ) from None
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None


def _bad_utf8_line(path: Path, shown: str) -> int:
    """The line of the first byte that is not UTF-8 (text is decoded in blocks, which hides it)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open_dataset(path, shown) as fh:
        while block := fh.read(1 << 16):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                return line + block[: max(0, e.start)].count(b"\n")
            line += block.count(b"\n")
    return line


def _json_rows(path: Path, shown: str) -> Iterator[dict[str, Any]]:
    try:
        with open_dataset(path, shown, MAX_JSON_DATASET_BYTES) as fh:
            raw = fh.read()
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LlmspecError.one(
            "E032", "dataset is not valid UTF-8", Loc(shown, line, 1), "save it as UTF-8"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LlmspecError.one(
            "E032", f"invalid JSON: {e.msg}", Loc(shown, e.lineno, e.colno)
        ) from None
    except RecursionError:
        raise _too_deep(Loc(shown, 1, 1)) from None
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise LlmspecError.one(
            "E032",
            "a .json dataset must be a list of objects",
            Loc(shown, 1, 1),
            'write `[{"question": ...}, ...]` or use .jsonl',
        )
    for i, row in enumerate(data, 1):
        try:
            check_row(row, Loc(shown, 1, 1))
        except LlmspecError as e:
            d = e.diagnostics[0]
            raise LlmspecError.one(d.code, f"row {i}: {d.message}", d.loc, d.hint) from None
        yield row


def common_columns(rows: Iterator[dict[str, Any]], limit: int = 100_000) -> tuple[set[str], int]:
    """Columns present in every row (up to `limit` rows), and the number of rows read."""
    cols: set[str] | None = None
    n = 0
    for row in rows:
        keys = set(row)
        cols = keys if cols is None else cols & keys
        n += 1
        if n >= limit:
            break
    return cols or set(), n


@dataclass(frozen=True)
class Scan:
    """What one pass over a dataset file finds: everything resolve (columns, row count), the
    facts (file and row digests) and the generate jobs (where each JSONL row starts) need, so
    that the file is read and parsed once per content (`HashCache.dataset` keeps it).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = p.write_text('{"q": "one", "a": 1}\\n\\n{"q": "two"}\\n')
    >>> s = scan_dataset(p, "jsonl")
    >>> len(s.rows), s.columns, s.offsets, s.size
    (2, ['q'], [0, 22], 35)
    """

    file: str  # digest of the file's bytes
    rows: list[str]  # digest of each row
    columns: list[str]  # the columns every row has, sorted
    offsets: list[int] | None  # JSONL: the byte where each row starts
    size: int  # bytes read

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "file": self.file, "rows": self.rows, "columns": self.columns,
                "offsets": self.offsets, "size": self.size}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Scan | None:
        if not isinstance(data, dict) or data.get("v") != 1:
            return None
        try:
            return cls(data["file"], data["rows"], data["columns"], data["offsets"], data["size"])
        except KeyError:
            return None

    def byte_range(self, start: int, end: int) -> tuple[int, int] | None:
        """Where rows `start:end` of a JSONL file lie, in bytes."""
        if self.offsets is None:
            return None
        first = self.offsets[start] if start < len(self.offsets) else self.size
        last = self.offsets[end] if end < len(self.offsets) else self.size
        return first, last


def scan_dataset(path: Path, fmt: str, shown: str | None = None) -> Scan:
    """Read a dataset file once: its digest, each row's digest, the columns of every row and,
    for JSONL, each row's offset; raise `LlmspecError` at a bad line as `read_rows` does."""
    from llmspec.hashing import digest

    shown = shown or path.as_posix()
    h = hashlib.sha256()
    rows: list[str] = []
    columns: set[str] | None = None
    offsets: list[int] = []
    size = 0

    def add(row: dict[str, Any]) -> None:
        nonlocal columns
        rows.append(digest(row))
        columns = set(row) if columns is None else columns & set(row)

    try:
        if fmt == "jsonl":
            with open_dataset(path, shown) as fh:
                for n, line in _lines(fh, shown):
                    h.update(line)
                    if line.strip():
                        offsets.append(size)
                        add(parse_jsonl_line(line, Loc(shown, n, 1), first=n == 1))
                    size += len(line)
        else:
            for row in read_rows(path, fmt, shown):
                add(row)
            cap = MAX_JSON_DATASET_BYTES if fmt == "json" else MAX_DATASET_BYTES
            with open_dataset(path, shown, cap) as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
                    size += len(block)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    cols = sorted(columns or ())
    return Scan("sha256:" + h.hexdigest(), rows, cols, offsets if fmt == "jsonl" else None, size)


def read_jsonl_bytes(path: Path, first: int, last: int, shown: str | None = None) -> list[Any]:
    """The rows of a JSONL file between byte `first` and byte `last` (from `Scan.byte_range`):
    one shard's rows, read without reading the rest of the file."""
    shown = shown or path.as_posix()
    rows: list[Any] = []
    try:
        with open_dataset(path, shown) as fh:
            fh.seek(first)
            pos = first
            while pos < last:
                line = fh.readline(MAX_ROW_BYTES + 1)
                if not line:
                    break
                if len(line) > MAX_ROW_BYTES:
                    raise _too_big(shown, f"the line at byte {pos}", MAX_ROW_BYTES)
                if line.strip():
                    rows.append(parse_jsonl_line(line, Loc(shown, 0, 0), first=pos == 0))
                pos += len(line)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    return rows


def jsonl_offsets(path: Path, shown: str | None = None) -> list[int]:
    """Byte offsets of the non-blank lines of a JSONL file: row i starts at offsets[i]."""
    shown = shown or path.as_posix()
    offsets = []
    pos = 0
    try:
        with open_dataset(path, shown) as fh:
            for _, line in _lines(fh, shown):
                if line.strip():
                    offsets.append(pos)
                pos += len(line)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    return offsets


def read_jsonl_range(
    path: Path, offsets: list[int], start: int, end: int, shown: str | None = None
) -> list[dict[str, Any]]:
    """Rows `start:end` of a JSONL file, read from its offset without reading the rest."""
    shown = shown or path.as_posix()
    rows: list[dict[str, Any]] = []
    if start >= len(offsets):
        return rows
    try:
        with open_dataset(path, shown) as fh:
            fh.seek(offsets[start])
            while len(rows) < end - start:
                first = fh.tell() == 0
                line = fh.readline(MAX_ROW_BYTES + 1)
                if not line:
                    break
                if len(line) > MAX_ROW_BYTES:
                    raise _too_big(shown, f"row {start + len(rows) + 1}", MAX_ROW_BYTES)
                if line.strip():
                    where = Loc(shown, 0, 0)
                    rows.append(parse_jsonl_line(line, where, first=first))
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None
    return rows
