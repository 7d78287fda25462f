"""Reading dataset files: JSONL, CSV and JSON, with errors at `file:line`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}


def dataset_format(path: str, declared: str | None) -> str | None:
    return declared or FORMATS.get(Path(path).suffix.lower())


def read_rows(path: Path, fmt: str, shown: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rows of a dataset file as dicts; raise `LlmspecError` at the bad line."""
    shown = shown or path.as_posix()
    try:
        if fmt == "jsonl":
            with path.open("r", encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise LlmspecError.one(
                            "E032",
                            f"invalid JSON: {e.msg}",
                            Loc(shown, n, e.colno),
                            "each line of a .jsonl file is one JSON object",
                        ) from None
                    if not isinstance(row, dict):
                        raise LlmspecError.one(
                            "E032", "a dataset row must be a JSON object", Loc(shown, n, 1)
                        )
                    yield row
        elif fmt == "csv":
            with path.open("r", encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                for row in reader:
                    if None in row:
                        raise LlmspecError.one(
                            "E032",
                            "row has more fields than the header",
                            Loc(shown, reader.line_num, 1),
                        )
                    yield dict(row)
        elif fmt == "json":
            text = path.read_text(encoding="utf-8")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise LlmspecError.one(
                    "E032", f"invalid JSON: {e.msg}", Loc(shown, e.lineno, e.colno)
                ) from None
            if isinstance(data, dict) and isinstance(data.get("rows"), list):
                data = data["rows"]
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise LlmspecError.one(
                    "E032",
                    "a .json dataset must be a list of objects",
                    Loc(shown, 1, 1),
                    'write `[{"question": ...}, ...]` or use .jsonl',
                )
            yield from data
        else:
            raise LlmspecError.one("E032", f"unknown dataset format `{fmt}`", Loc(shown))
    except UnicodeDecodeError:
        raise LlmspecError.one("E032", "dataset is not valid UTF-8", Loc(shown, 1, 1)) from None
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read dataset: {e.strerror}", Loc(shown)) from None


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


def jsonl_offsets(path: Path) -> list[int]:
    """Byte offsets of the non-blank lines of a JSONL file: row i starts at offsets[i]."""
    offsets = []
    pos = 0
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                offsets.append(pos)
            pos += len(line)
    return offsets


def read_jsonl_range(path: Path, offsets: list[int], start: int, end: int) -> list[dict[str, Any]]:
    """Rows `start:end` of a JSONL file, read from its offset without reading the rest."""
    rows: list[dict[str, Any]] = []
    if start >= len(offsets):
        return rows
    with path.open("rb") as fh:
        fh.seek(offsets[start])
        while len(rows) < end - start:
            line = fh.readline()
            if not line:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows
