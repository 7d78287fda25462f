"""Knowledge sources: where documents come from (files inside the project, or a dataset), the
embedding model, and the list of files an index reads."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from llmspec.errors import did_you_mean

MAX_FILES = 10_000
"""Files one knowledge source may index: more is almost always a wrong glob (and makes every
plan hash them); split the source if it is not."""
EMBEDDERS = ("minilm",)


def check_knowledge(c: Any) -> None:
    for name, k in c.p.knowledge.items():
        base = ("knowledge", name)
        if k.source.dataset is not None:
            c.ref("datasets", k.source.dataset, base + ("source", "dataset"))
        elif k.source.path is not None:
            target = c.check_path(k.source.path, base + ("source", "path"), "knowledge source")
            globs_ok = _check_globs(c, name, k.source)
            if target is not None and globs_ok:
                c.knowledge_files[name] = tuple(_files(c, name, target, k.source))
        if k.embed not in EMBEDDERS:
            target = c.check_path(k.embed, base + ("embed",), "embedding model", exist=False)
            if target is not None and not target.is_dir():
                c.error(
                    "E020",
                    f"unknown embedding model `{k.embed}`",
                    base + ("embed",),
                    did_you_mean(k.embed, EMBEDDERS)
                    or "use `minilm` or a folder of the project holding a sentence-transformers "
                    "model",
                )


def _check_globs(c: Any, name: str, source: Any) -> bool:
    ok = True
    for field in ("include", "exclude"):
        for i, pattern in enumerate(getattr(source, field)):
            p = PurePosixPath(pattern)
            if p.is_absolute() or pattern.startswith("~"):
                problem = "is absolute"
            elif ".." in p.parts:
                problem = "climbs out of the source folder with `..`"
            elif not pattern.strip():
                problem = "is empty"
            else:
                continue
            ok = False
            c.error(
                "E030",
                f"`{field}` pattern `{pattern}` of knowledge `{name}` {problem}",
                ("knowledge", name, "source", field, i),
                f"patterns are relative to `{source.path}`, e.g. `**/*.md`",
            )
    return ok


def _files(c: Any, name: str, base: Path, source: Any) -> list[Path]:
    """The files an index reads: `include` globs under `path`, minus `exclude`; hidden files
    skipped; every file (symlinks followed) inside the project and a regular file."""
    if base.is_file():
        found = {base}
    else:
        found: set[Path] = set()
        for i, pattern in enumerate(source.include):
            try:
                matches = list(base.glob(pattern))
            except ValueError as e:
                c.error(
                    "E013",
                    f"`include` pattern `{pattern}` of knowledge `{name}`: {e}",
                    ("knowledge", name, "source", "include", i),
                    "e.g. `**/*.md`: `**` stands alone between slashes",
                )
                return []
            for p in matches:
                found.add(p)
                if len(found) > MAX_FILES:
                    c.error(
                        "E037",
                        f"knowledge `{name}` matches more than {MAX_FILES:,} files",
                        ("knowledge", name, "source", "include"),
                        "narrow `include`, or split the source into several knowledge entries",
                    )
                    return []
        for i, pattern in enumerate(source.exclude):
            try:
                found.difference_update(list(base.glob(pattern)))
            except ValueError as e:
                c.error(
                    "E013",
                    f"`exclude` pattern `{pattern}` of knowledge `{name}`: {e}",
                    ("knowledge", name, "source", "exclude", i),
                )
                return []
    out = []
    for p in sorted(found):
        rel = p.relative_to(base).parts if p != base else ()
        if any(part.startswith(".") for part in rel):
            continue
        if not c.inside(p):
            c.error(
                "E030",
                f"knowledge `{name}`: `{p.relative_to(c.root).as_posix()}` links outside the "
                "project folder",
                ("knowledge", name, "source", "path"),
                "remove the symlink, or copy the file into the project",
            )
            continue
        if p.is_dir():
            continue
        if not p.is_file():
            c.error(
                "E038",
                f"knowledge `{name}`: `{p.relative_to(c.root).as_posix()}` is not a regular file",
                ("knowledge", name, "source", "path"),
                "knowledge sources read regular files only",
            )
            continue
        out.append(p)
    return out
