"""Datasets: their files, formats, columns and row counts; generated ones name their source."""

from __future__ import annotations

from typing import Any

from llmspec.errors import LlmspecError
from llmspec.load import KeyPath

GENERATED_COLUMNS = frozenset({"question", "expected", "context", "kind"})


def check_datasets(c: Any) -> None:
    for name, d in c.p.datasets.items():
        base = ("datasets", name)
        if d.generate is not None:
            c.ref("knowledge", d.generate.from_, base + ("generate", "from"))
            c.ref("models", d.generate.model, base + ("generate", "model"))
            c.columns[name] = GENERATED_COLUMNS
            c.counts[name] = d.generate.count
        elif d.path is not None:
            got = _columns(c, name, d)
            if got is not None:
                cols, c.counts[name] = got
                if c.counts[name]:  # an empty dataset (W001) has no columns to check against
                    c.columns[name] = cols


def _columns(c: Any, name: str, d: Any) -> tuple[frozenset[str], int] | None:
    from llmspec import data
    from llmspec.load import shown_path

    base: KeyPath = ("datasets", name)
    fmt = data.dataset_format(d.path, d.format)
    if fmt is None:
        c.error(
            "E032",
            f"cannot tell the format of `{d.path}`",
            base + ("path",),
            "name it .jsonl, .csv or .json, or set `format:`",
        )
        return None
    target = c.check_path(d.path, base + ("path",), "dataset file")
    if target is None:
        return None
    if not target.is_file():
        c.error(
            "E038",
            f"dataset file `{d.path}` is not a regular file",
            base + ("path",),
            "a dataset is a .jsonl, .csv or .json file",
        )
        return None
    try:
        scan = c.cache.dataset(target, fmt, shown_path(target))
    except LlmspecError as e:
        c.diags.extend(e.diagnostics)
        return None
    c.scans[name] = scan  # compile takes the digests from here: the file is not read again
    if not scan.rows:
        c.warn("W001", f"dataset `{name}` has no rows", base + ("path",))
    return frozenset(scan.columns), len(scan.rows)
