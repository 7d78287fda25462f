"""Datasets: their files, formats, columns and row counts; generated ones name their source."""

from __future__ import annotations

from typing import Any

from llmspec.errors import LlmspecError
from llmspec.load import KeyPath

GENERATED_COLUMNS = frozenset(
    {"slot", "question", "expected", "kind", "reference_context", "reference_sources", "context"}
)
"""The columns of a generated test set's rows (`llmspec.testsets`)."""


def check_datasets(c: Any) -> None:
    for name, d in c.p.datasets.items():
        base = ("datasets", name)
        if d.generate is not None:
            c.ref("knowledge", d.generate.from_, base + ("generate", "from"))
            if c.ref("models", d.generate.model, base + ("generate", "model")):
                _check_writer(c, name, d.generate.model)
            c.columns[name] = GENERATED_COLUMNS
            c.counts[name] = d.generate.count
            if d.generate.export is not None:
                _check_export(c, name, d.generate)
        elif d.path is not None:
            got = _columns(c, name, d)
            if got is not None:
                cols, c.counts[name] = got
                if c.counts[name]:  # an empty dataset (W001) has no columns to check against
                    c.columns[name] = cols
                    ref = d.reference_context
                    if ref is not None and ref not in cols:
                        c.error(
                            "E041",
                            f"dataset `{name}` names `reference_context: {ref}`, a column not "
                            "in every row",
                            base + ("reference_context",),
                            f"columns: {', '.join(sorted(cols)) or 'none'}",
                        )


def _check_writer(c: Any, name: str, model: str) -> None:
    from llmspec.providers import PROVIDERS

    provider = c.p.models[model].provider
    if not PROVIDERS[provider].capabilities.json_schema:
        c.error(
            "E060",
            f"model `{model}` ({provider}) cannot return the schema-constrained items a "
            f"generated test set is made of",
            ("datasets", name, "generate", "model"),
            "use a transformers, llamacpp or openai model to write test sets",
        )


def _check_export(c: Any, name: str, g: Any) -> None:
    """The export file: a .jsonl file inside the project, not read by the knowledge source
    it is generated from, and (when it exists) readable JSONL of items."""
    from llmspec import data
    from llmspec.load import shown_path

    where = ("datasets", name, "generate", "export")
    if not g.export.endswith(".jsonl"):
        c.error("E013", f"`export` of dataset `{name}` must be a .jsonl file", where)
        return
    target = c.check_path(g.export, where, "export file", exist=False)
    if target is None:
        return
    if target.exists() and not target.is_file():
        c.error("E038", f"export file `{g.export}` is not a regular file", where)
        return
    if target in c.knowledge_files.get(g.from_, ()):
        c.error(
            "E021",
            f"export file `{g.export}` is one of the files knowledge `{g.from_}` reads: the set "
            "would be generated from itself",
            where,
            f"add it to `exclude` of knowledge `{g.from_}`, or export elsewhere",
        )
        return
    if not target.exists():
        return
    try:
        for i, row in enumerate(data.read_rows(target, "jsonl", shown_path(target))):
            if not isinstance(row.get("slot"), int) or isinstance(row.get("slot"), bool):
                c.error(
                    "E032",
                    f"export file `{g.export}` line {i + 1}: an item without an integer `slot`",
                    where,
                    "restore the line from version control, or delete it to generate it again",
                )
                return
    except LlmspecError as e:
        c.diags.extend(e.diagnostics)


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
