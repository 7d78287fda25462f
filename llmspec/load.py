"""Stage 1: read spec files into plain data with a source position for every key and value.

The loader is the attack surface of llmspec, so it builds data from the YAML *event* stream
itself rather than through a YAML constructor: nothing is ever instantiated from a tag, only the
YAML 1.2 core types exist (map, seq, str, int, float, bool, null), nesting depth and alias
expansion are bounded, and every problem becomes a `Diagnostic` at `file:line:col`.

    >>> f = load_text("a: [1, two]\\n", "a.yaml")
    >>> f.data, f.locs[("a", 1)]
    ({'a': [1, 'two']}, Loc(file='a.yaml', line=1, col=8, end_col=11))
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmspec.errors import Diagnostic, LlmspecError, Loc

MAX_FILE_BYTES = 1 << 20  # 1 MiB of YAML is far more than any hand-written spec
MAX_DEPTH = 64
MAX_NODES = 200_000  # values built per file, aliases counted at their full expanded size
MAX_FILES = 500

KeyPath = tuple[str | int, ...]

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema), nothing from YAML 1.1.
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

# YAML 1.2's printable characters (https://yaml.org/spec/1.2.2/#51-character-set); anything
# else (NUL, escape sequences, C1 controls, lone surrogates) is refused before parsing, with
# its position.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DIRECTIVE = re.compile(r"%([^\s#]*)")

_CORE = "tag:yaml.org,2002:"
_CORE_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One loaded spec file: its text, its data, and where each value and key came from."""

    path: str  # as shown to users: relative to the project root
    text: str
    data: Any
    locs: dict[KeyPath, Loc]  # key path -> position of the value
    key_locs: dict[KeyPath, Loc]  # key path -> position of the mapping key
    raw: dict[KeyPath, str]  # key path -> source text of a plain scalar that was not a string

    def loc(self, path: KeyPath, key: bool = False) -> Loc:
        """The position of `path`, or of its nearest parent that has one."""
        table = self.key_locs if key else self.locs
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.key_locs:
                return self.key_locs[p]
            p = p[:-1]
        return self.locs.get((), Loc(self.path, 1, 1))


def resolve_scalar(value: str) -> Any:
    """Type a plain (unquoted) scalar by the YAML 1.2 core schema."""
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT10.match(value):
        return int(value)
    if _INT8.match(value):
        return int(value[2:], 8)
    if _INT16.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.match(value):
        return math.nan
    return value


def _mark_loc(path: str, mark: Any, end: Any = None) -> Loc:
    line, col = mark.line + 1, mark.column + 1
    end_col = end.column + 1 if end is not None and end.line == mark.line else col + 1
    return Loc(path, line, col, max(end_col, col + 1))


class _Frame:
    __slots__ = ("kind", "value", "path", "anchor", "key", "key_loc", "start", "size", "keys")

    def __init__(self, kind: str, value: Any, path: KeyPath, anchor: str | None, start: Loc):
        self.kind = kind
        self.value = value
        self.path = path
        self.anchor = anchor
        self.key: Any = None
        self.key_loc: Loc | None = None
        self.start = start
        self.size = 1
        self.keys: set = set()


def load_text(text: str, path: str = "<string>") -> SourceFile:
    """Parse one YAML document into a `SourceFile`; raise `LlmspecError` on any problem."""
    from ruamel.yaml import YAML
    from ruamel.yaml import events as ev
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise LlmspecError.one(
            "E007",
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
            Loc(path, 1, 1),
            "split the project into several *.yaml files, or keep large data in datasets/",
        )
    _check_characters(text, path)
    _check_directives(text, path)

    locs: dict[KeyPath, Loc] = {}
    key_locs: dict[KeyPath, Loc] = {}
    raw: dict[KeyPath, str] = {}
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    result: list[Any] = []
    total = 0
    documents = 0

    def fail(code: str, message: str, loc: Loc, hint: str | None = None) -> LlmspecError:
        return LlmspecError.one(code, message, loc, hint)

    def add(value: Any, size: int, loc: Loc, anchor: str | None) -> None:
        """Attach a finished value to its parent (or make it the document)."""
        nonlocal total
        total += size
        if total > MAX_NODES:
            raise fail(
                "E004",
                f"document expands to more than {MAX_NODES:,} values",
                loc,
                "anchors and aliases multiply the data they point to; write the values out "
                "or split the file",
            )
        if anchor is not None:
            anchors[anchor] = (value, size)
        if not stack:
            result.append(value)
            return
        parent = stack[-1]
        parent.size += size
        if parent.kind == "seq":
            parent.value.append(value)
            return
        if parent.key is _PENDING:
            # This value is a key.
            if isinstance(value, (dict, list)):
                raise fail("E001", "a mapping key must be a plain scalar", loc)
            if value is None or not isinstance(value, (str, int, float, bool)):
                value = "" if value is None else value
            key = value if isinstance(value, str) else str(value)
            if key in parent.keys:
                first = key_locs.get(parent.path + (key,))
                where = f" (first at line {first.line})" if first else ""
                raise fail(
                    "E002",
                    f"duplicate key `{key}`{where}",
                    loc,
                    "YAML keeps only one of them: remove or rename the other",
                )
            parent.keys.add(key)
            parent.key = key
            parent.key_loc = loc
            key_locs[parent.path + (key,)] = loc
            return
        parent.value[parent.key] = value
        parent.key = _PENDING

    def child_path() -> KeyPath:
        if not stack:
            return ()
        parent = stack[-1]
        if parent.kind == "seq":
            return parent.path + (len(parent.value),)
        if parent.key is _PENDING:
            return parent.path + ("<key>",)
        return parent.path + (parent.key,)

    def is_key() -> bool:
        return bool(stack) and stack[-1].kind == "map" and stack[-1].key is _PENDING

    def check_tag(tag: str | None, loc: Loc) -> None:
        if tag is None or tag == "!" or tag in _CORE_TAGS:
            return
        shown = tag.replace(_CORE, "!!")
        raise fail(
            "E003",
            f"YAML tag `{shown}` is not allowed",
            loc,
            "llmspec reads plain YAML only (maps, lists, strings, numbers, booleans, null); "
            "remove the tag",
        )

    yaml = YAML(typ="safe", pure=True)
    try:
        for event in yaml.parse(text):
            if isinstance(event, (ev.StreamStartEvent, ev.StreamEndEvent, ev.DocumentEndEvent)):
                continue
            loc = _mark_loc(path, event.start_mark, getattr(event, "end_mark", None))
            if isinstance(event, ev.DocumentStartEvent):
                documents += 1
                if getattr(event, "version", None) or getattr(event, "tags", None):
                    raise fail(
                        "E006",
                        "YAML directives (`%YAML`, `%TAG`) are not allowed",
                        Loc(path, 1, 1),
                        "remove the directive line: llmspec always reads YAML 1.2",
                    )
                if documents > 1:
                    raise fail(
                        "E001",
                        "more than one YAML document in a file",
                        loc,
                        "put each document in its own *.yaml file; they merge into one project",
                    )
                continue
            if isinstance(event, ev.AliasEvent):
                if event.anchor not in anchors:
                    raise fail("E001", f"unknown alias `*{event.anchor}`", loc)
                value, size = anchors[event.anchor]
                if is_key():
                    add(value, 1, loc, None)
                else:
                    p = child_path()
                    locs.setdefault(p, loc)
                    add(value, size, loc, None)
                continue
            anchor = getattr(event, "anchor", None)
            tag = getattr(event, "tag", None)
            if isinstance(event, ev.ScalarEvent):
                check_tag(tag, loc)
                plain = event.style is None and (event.implicit[0] if event.implicit else True)
                value: Any = event.value
                if tag in _CORE_TAGS and tag != f"{_CORE}str":
                    value = _typed(event.value, tag, loc, fail)
                elif plain and tag is None:
                    value = resolve_scalar(event.value)
                if is_key():
                    add(value, 1, loc, anchor)
                    continue
                p = child_path()
                locs[p] = loc
                if plain and not isinstance(value, str):
                    raw[p] = event.value
                add(value, 1, loc, anchor)
                continue
            if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
                check_tag(tag, loc)
                if is_key():
                    raise fail("E001", "a mapping key must be a plain scalar", loc)
                if len(stack) >= MAX_DEPTH:
                    raise fail(
                        "E005",
                        f"nesting is deeper than {MAX_DEPTH} levels",
                        loc,
                        "flatten the structure; no llmspec spec needs this depth",
                    )
                p = child_path()
                locs[p] = loc
                kind = "map" if isinstance(event, ev.MappingStartEvent) else "seq"
                frame = _Frame(kind, {} if kind == "map" else [], p, anchor, loc)
                if kind == "map":
                    frame.key = _PENDING
                stack.append(frame)
                continue
            if isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
                frame = stack.pop()
                value = (
                    _merge_keys(frame.value, frame.start, fail)
                    if frame.kind == "map"
                    else frame.value
                )
                add(value, frame.size, frame.start, frame.anchor)
                continue
    except LlmspecError:
        raise
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _mark_loc(path, mark) if mark is not None else Loc(path, 1, 1)
        problem = e.problem or e.context or "invalid YAML"
        hint = None
        if "found character '\\t'" in str(problem) or "\t" in str(problem):
            hint = "YAML indentation must use spaces, not tabs"
        elif "mapping values are not allowed" in str(problem):
            hint = "quote a value that contains `: `, or check the indentation above"
        elif "expected <block end>" in str(problem):
            hint = "check the indentation: keys of one mapping must start in the same column"
        raise fail("E001", f"YAML syntax error: {problem}", loc, hint) from None
    except (YAMLError, ValueError, UnicodeError) as e:
        raise fail("E001", f"YAML syntax error: {e}", Loc(path, 1, 1)) from None
    except RecursionError:
        raise fail("E005", "nesting too deep to read", Loc(path, 1, 1)) from None
    except Exception as e:  # the YAML parser's own assertions: still not a traceback
        raise fail(
            "E001", f"YAML syntax error (the parser gave up: {type(e).__name__})", Loc(path, 1, 1)
        ) from None

    data = result[0] if result else None
    locs.setdefault((), Loc(path, 1, 1))
    return SourceFile(path, text, data, locs, key_locs, raw)


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _check_characters(text: str, path: str) -> None:
    """Refuse a character YAML does not allow, at its position (the parser's own message gives
    an offset into the whole text, and a NUL byte means this is not a text file at all)."""
    m = _UNPRINTABLE.search(text)
    if m is None:
        return
    line, col = _position(text, m.start())
    char = m.group()
    if char == "\x00":
        raise LlmspecError.one(
            "E001", "file contains a NUL byte: not a YAML text", Loc(path, line, col)
        )
    raise LlmspecError.one(
        "E001",
        f"character U+{ord(char):04X} is not allowed in YAML",
        Loc(path, line, col),
        f'remove it, or write it as the escape "\\u{ord(char):04x}" in a double-quoted string'
        if ord(char) < 0x10000 and not 0xD800 <= ord(char) <= 0xDFFF
        else "remove it",
    )


def _check_directives(text: str, path: str) -> None:
    """Refuse `%YAML`, `%TAG` and other directives, at their line, before the parser sees
    them: it asserts on some (`%YAML 1.11`). Directives stand before a document's content, at
    the start of the file or after a `...` line."""
    prefix = True
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if line.rstrip() == "...":
            prefix = True
        if not prefix or not stripped or stripped.startswith("#") or line.rstrip() == "...":
            continue
        m = _DIRECTIVE.match(line)
        if m is None:
            prefix = False  # document content
            continue
        name = m.group(1)
        shown = f"`%{name}`" if name in ("YAML", "TAG") or not name else f"`%{name[:20]}`"
        raise LlmspecError.one(
            "E006",
            "YAML directives (`%YAML`, `%TAG`) are not allowed"
            if name in ("YAML", "TAG")
            else f"YAML directive {shown} is not allowed",
            Loc(path, n, 1),
            "remove the directive line: llmspec always reads YAML 1.2",
        )


class _Pending:
    def __repr__(self) -> str:
        return "<pending>"


_PENDING = _Pending()


def _typed(value: str, tag: str, loc: Loc, fail: Any) -> Any:
    """Honour an explicit core tag such as `!!int 3`."""
    resolved = resolve_scalar(value)
    want = tag[len(_CORE) :]
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }.get(want)
    if ok is None or not ok(resolved):
        raise fail("E003", f"`{value}` is not a valid !!{want}", loc)
    return float(resolved) if want == "float" else resolved


def _merge_keys(mapping: dict, loc: Loc, fail: Any) -> dict:
    """Apply YAML merge keys (`<<: *base`); keys written in the mapping win."""
    if "<<" not in mapping:
        return mapping
    merged = mapping.pop("<<")
    sources = merged if isinstance(merged, list) else [merged]
    out: dict = {}
    for src in reversed(sources):
        if not isinstance(src, dict):
            raise fail("E001", "a merge key `<<` must point to a mapping", loc)
        out.update(src)
    out.update(mapping)
    return out


def load_file(path: Path, root: Path | None = None) -> SourceFile:
    """Read and parse one spec file; its path is shown relative to the current folder.

    Only a regular file is read, opened without blocking (a FIFO named `llmspec.yaml` would
    hang `validate` otherwise): anything else is E008. With `root`, the project folder, a file
    that resolves outside it (a link to `/proc/self/environ`) is E009, refused before it is
    opened, so nothing of it can reach a message."""
    shown = shown_path(path)
    if root is not None:
        _check_inside(path, root, shown)
    try:
        _regular(os.stat(path), shown)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags), "rb") as fh:
            st = os.fstat(fh.fileno())
            _regular(st, shown)
            if st.st_size > MAX_FILE_BYTES:
                raise _too_large(shown, st.st_size)
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise _too_large(shown, len(data))
    except OSError as e:
        raise LlmspecError.one("E008", f"cannot read file: {e.strerror}", Loc(shown)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LlmspecError.one(
            "E001", "file is not valid UTF-8", Loc(shown, line, 1), "save the file as UTF-8"
        ) from None
    return load_text(text, shown)


def _too_large(shown: str, size: int) -> LlmspecError:
    return LlmspecError.one(
        "E007",
        f"file is {size // 1024} KiB, larger than the {MAX_FILE_BYTES // 1024} KiB cap",
        Loc(shown, 1, 1),
        "split the project into several *.yaml files, or keep large data in datasets/",
    )


def _regular(st: os.stat_result, shown: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(st.st_mode)
        else "a named pipe (FIFO)"
        if stat.S_ISFIFO(st.st_mode)
        else "a device or socket"
    )
    raise LlmspecError.one(
        "E008",
        f"spec file is {kind}, not a regular file",
        Loc(shown),
        "a spec file is a *.yaml text file",
    )


def _check_inside(path: Path, root: Path, shown: str) -> None:
    """E009 when `path` resolves outside the project folder `root` (through a link)."""
    base = Path(os.path.realpath(root))
    if Path(os.path.realpath(path)).is_relative_to(base):
        return
    target = os.readlink(path) if os.path.islink(path) else None
    what = f"a link to `{target}`" if target is not None else "reached through a link"
    raise LlmspecError.one(
        "E009",
        f"spec file is {what}, outside the project folder",
        Loc(shown),
        "llmspec reads spec files inside the project only: put the file itself there",
    )


def shown_path(path: Path) -> str:
    """A path as shown in diagnostics: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def spec_paths(root: Path) -> list[Path]:
    """The spec files of a project: the file itself, or the `*.yaml`/`*.yml` files of a folder."""
    if not root.is_dir():
        if root.exists() or root.is_symlink():
            return [root]  # load_file refuses it if it is not a regular file
        raise LlmspecError.one(
            "E008",
            f"no such file or directory: {root}",
            hint="pass a spec file or a folder of *.yaml files (default: the current folder)",
        )
    # everything named *.yaml but a folder: a FIFO or a dangling link is reported, not skipped
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir())
    if not files:
        raise LlmspecError.one(
            "E008",
            f"no *.yaml files in {root}",
            hint="create llmspec.yaml there, or pass the folder that holds the specs",
        )
    if len(files) > MAX_FILES:
        raise LlmspecError.one("E007", f"more than {MAX_FILES} spec files in {root}")
    return files


def load_files(root: str | Path = ".") -> tuple[SourceFile, ...]:
    """Load every spec file of a project, collecting the errors of all files."""
    root = Path(root)
    paths = spec_paths(root)
    folder = root if root.is_dir() else root.parent
    files: list[SourceFile] = []
    diagnostics: list[Diagnostic] = []
    for p in paths:
        try:
            files.append(load_file(p, folder))
        except LlmspecError as e:
            diagnostics.extend(e.diagnostics)
    if diagnostics:
        raise LlmspecError(diagnostics)
    return tuple(files)
