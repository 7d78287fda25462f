"""The one error type of llmspec and the diagnostics it carries.

Every stage collects `Diagnostic` values and raises them together in one `LlmspecError`, so a
user sees every problem of a run at once::

    >>> d = Diagnostic("E010", "unknown field `tempreature`", Loc("a.yaml", 3, 5))
    >>> str(d)
    'a.yaml:3:5: error[E010]: unknown field `tempreature`'
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Loc:
    """A position in a spec file; line and column count from 1."""

    file: str
    line: int = 0
    col: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: a stable code, where it is, what is wrong and how to fix it."""

    code: str
    message: str
    loc: Loc | None = None
    hint: str | None = None
    severity: str = "error"
    notes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{where}{self.severity}[{self.code}]: {self.message}"

    def sort_key(self) -> tuple:
        loc = self.loc or Loc("")
        return (loc.file, loc.line, loc.col, self.code, self.message)


class LlmspecError(Exception):
    """Raised by any stage with every diagnostic it collected."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def one(
        cls, code: str, message: str, loc: Loc | None = None, hint: str | None = None
    ) -> LlmspecError:
        return cls([Diagnostic(code, message, loc, hint)])


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """A hint naming the closest known name, or listing the known ones."""
    known = sorted(set(known))
    if not known:
        return None
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    shown = ", ".join(f"`{k}`" for k in known[:12])
    more = f" and {len(known) - 12} more" if len(known) > 12 else ""
    return f"known: {shown}{more}"


def render(
    diagnostics: Sequence[Diagnostic],
    sources: dict[str, str | None] | None = None,
    allowed_root: str | os.PathLike[str] | None = None,
) -> str:
    """Render diagnostics the way compilers do: header, the offending line, a caret, the hint.

    A diagnostic's line is taken from `sources` (file -> text) or else read from its file.
    With `allowed_root` (the project folder), lines are shown only of files that resolve
    inside it, so a spec or dataset that is a link to `/proc/self/environ` never has a line of
    it printed; files that are not regular files (a FIFO) are never opened, root or not.

        >>> d = Diagnostic("E001", "YAML syntax error", Loc("/etc/passwd", 1, 1))
        >>> render([d], allowed_root="/work/project").splitlines()[0]
        '/etc/passwd:1:1: error[E001]: YAML syntax error'
    """
    sources = dict(sources or {})
    base = os.path.realpath(allowed_root) if allowed_root is not None else None
    out: list[str] = []
    for d in diagnostics:
        out.append(str(d))
        shown = d.loc is not None and d.loc.line > 0 and _may_show(d.loc.file, base)
        text = _source_text(d.loc.file, sources) if shown and d.loc else None
        if d.loc and d.loc.line and text is not None:
            lines = text.splitlines()
            if 0 < d.loc.line <= len(lines):
                src = lines[d.loc.line - 1]
                if len(src) > 160:
                    src = src[:157] + "..."
                num = str(d.loc.line)
                pad = " " * len(num)
                width = max(1, (d.loc.end_col or d.loc.col + 1) - d.loc.col)
                caret_col = max(1, d.loc.col)
                out.append(f"{pad} |")
                out.append(f"{num} | {src}")
                out.append(f"{pad} | {' ' * (caret_col - 1)}{'^' * min(width, 80)}")
        for note in d.notes:
            out.append(f"  = note: {note}")
        if d.hint:
            out.append(f"  = hint: {d.hint}")
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    if parts:
        out.append(f"\n{' and '.join(parts)}")
    return "\n".join(out)


def _may_show(file: str, base: str | None) -> bool:
    """Whether lines of `file` may be printed: always without a root, else only when the file
    resolves (links followed) inside it."""
    if base is None:
        return True
    real = os.path.realpath(file)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _source_text(file: str, cache: dict[str, str | None]) -> str | None:
    if file not in cache:
        cache[file] = _read_regular(file)
    return cache[file]


def _read_regular(file: str) -> str | None:
    """The start of a regular file's text; None for anything else, which is never waited on."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            return None
        with os.fdopen(os.open(file, flags), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            return fh.read(1 << 21).decode("utf-8", errors="replace")
    except OSError:
        return None
