"""Where each value and key of a JSON document is, for diagnostics inside JSON schema files.

`json_source(text, shown)` gives a `SourceFile` (the type the YAML loader gives for spec
files): the data as `json.loads` reads it, and for every key path the line and column of its
value and of its key, so a diagnostic about `/properties/a/pattern` points at that line of
`schemas/s.json` rather than at the `file:` line that names it.

    >>> f = json_source('{\\n  "a": {"pattern": "(x"}\\n}', "s.json")
    >>> str(f.loc(("a", "pattern"))), str(f.loc(("a", "pattern"), key=True))
    ('s.json:2:20', 's.json:2:9')
"""

from __future__ import annotations

import json

from llmspec.errors import Loc
from llmspec.load import KeyPath, SourceFile

_MAX_DEPTH = 512


def json_source(text: str, shown: str) -> SourceFile:
    """The `SourceFile` of a JSON document. Raises ValueError (from `json.loads`) when it is
    not JSON; positions are best effort and left out where the scanner cannot follow."""
    data = json.loads(text)
    locs: dict[KeyPath, Loc] = {}
    key_locs: dict[KeyPath, Loc] = {}
    try:
        _Scanner(text, shown, locs, key_locs).document()
    except (ValueError, IndexError, RecursionError):
        pass  # positions found so far are kept; the rest fall back to a parent's
    locs.setdefault((), Loc(shown, 1, 1))
    return SourceFile(shown, text, data, locs, key_locs, {})


class _Scanner:
    def __init__(self, text: str, shown: str, locs: dict, key_locs: dict):
        self.s, self.shown, self.locs, self.key_locs = text, shown, locs, key_locs
        self.i = 0
        # line starts, for offset -> (line, col)
        self.starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == "\n"]

    def loc(self, start: int, end: int) -> Loc:
        import bisect

        line = bisect.bisect_right(self.starts, start)
        col = start - self.starts[line - 1] + 1
        same_line = bisect.bisect_right(self.starts, max(start, end - 1)) == line
        return Loc(self.shown, line, col, col + (end - start) if same_line else 0)

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n\ufeff":
            self.i += 1

    def document(self) -> None:
        self.ws()
        self.value((), 0)

    def value(self, path: tuple, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("too deep")
        self.ws()
        start = self.i
        ch = self.s[self.i]
        if ch == "{":
            self.i += 1
            self.ws()
            if self.s[self.i] == "}":
                self.i += 1
            else:
                while True:
                    self.ws()
                    k0 = self.i
                    key = self.string()
                    self.key_locs[path + (key,)] = self.loc(k0, self.i)
                    self.ws()
                    if self.s[self.i] != ":":
                        raise ValueError("expected ':'")
                    self.i += 1
                    self.value(path + (key,), depth + 1)
                    self.ws()
                    if self.s[self.i] == ",":
                        self.i += 1
                        continue
                    if self.s[self.i] != "}":
                        raise ValueError("expected '}'")
                    self.i += 1
                    break
        elif ch == "[":
            self.i += 1
            self.ws()
            if self.s[self.i] == "]":
                self.i += 1
            else:
                n = 0
                while True:
                    self.value(path + (n,), depth + 1)
                    n += 1
                    self.ws()
                    if self.s[self.i] == ",":
                        self.i += 1
                        continue
                    if self.s[self.i] != "]":
                        raise ValueError("expected ']'")
                    self.i += 1
                    break
        elif ch == '"':
            self.string()
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]} \t\r\n":
                self.i += 1
        self.locs[path] = self.loc(start, self.i if ch not in "{[" else start + 1)

    def string(self) -> str:
        if self.s[self.i] != '"':
            raise ValueError("expected a string")
        start = self.i
        self.i += 1
        while self.s[self.i] != '"':
            self.i += 2 if self.s[self.i] == "\\" else 1
        self.i += 1
        return json.loads(self.s[start : self.i])
