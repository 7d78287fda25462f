"""Stage 2: merge the loaded files into one project and check it against the spec language.

Every pydantic error is mapped back to the YAML position it came from (the key for an unknown
field, the value for a wrong one, the parent for a missing one) with a hint on how to fix it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from llmspec.errors import Diagnostic, LlmspecError, Loc, did_you_mean
from llmspec.load import KeyPath, SourceFile
from llmspec.spec import DISCRIMINATORS, SECTIONS, SINGULAR, TAG_CALLABLES, Project

TOP_SCALARS = ("version", "name", "description")


@dataclass(frozen=True)
class Sources:
    """Where each part of the merged project came from, for diagnostics in later stages."""

    root: Path
    files: tuple[SourceFile, ...]
    origin: dict[KeyPath, SourceFile] = field(default_factory=dict)

    def file_for(self, path: KeyPath) -> SourceFile | None:
        for n in (2, 1):
            if len(path) >= n and tuple(path[:n]) in self.origin:
                return self.origin[tuple(path[:n])]
        return self.files[0] if self.files else None

    def loc(self, path: KeyPath, key: bool = False) -> Loc:
        f = self.file_for(path)
        if f is None:
            return Loc("<project>")
        return f.loc(tuple(path), key=key)

    def raw(self, path: KeyPath) -> str | None:
        f = self.file_for(path)
        return f.raw.get(tuple(path)) if f else None


@dataclass(frozen=True)
class ValidProject:
    """A project that passed the spec language, and where each part of it was written."""

    spec: Project
    sources: Sources
    data: dict[str, Any]


def merge_files(files: tuple[SourceFile, ...]) -> tuple[dict[str, Any], dict, list[Diagnostic]]:
    """Merge files section by section, as Terraform merges *.tf files."""
    merged: dict[str, Any] = {}
    origin: dict[KeyPath, SourceFile] = {}
    diags: list[Diagnostic] = []
    for f in files:
        if f.data is None:
            continue
        if not isinstance(f.data, dict):
            diags.append(
                Diagnostic(
                    "E011",
                    "a spec file must be a mapping of sections (version, name, models, ...)",
                    f.loc(()),
                )
            )
            continue
        for key, value in f.data.items():
            if key in SECTIONS and isinstance(value, dict):
                section = merged.setdefault(key, {})
                if not isinstance(section, dict):
                    continue
                origin.setdefault((key,), f)
                for name, item in value.items():
                    if name in section:
                        first = origin[(key, name)]
                        diags.append(
                            Diagnostic(
                                "E022",
                                f"{SINGULAR[key]} `{name}` is declared twice",
                                f.loc((key, name), key=True),
                                "rename one of them or delete the copy",
                                notes=(f"first declared at {first.loc((key, name), key=True)}",),
                            )
                        )
                        continue
                    section[name] = item
                    origin[(key, name)] = f
            elif key in merged:
                first = origin[(key,)]
                if key in TOP_SCALARS and merged[key] == value:
                    continue
                diags.append(
                    Diagnostic(
                        "E022",
                        f"`{key}` is set in more than one file",
                        f.loc((key,), key=True),
                        "set it once, in one file",
                        notes=(f"first set at {first.loc((key,), key=True)}",),
                    )
                )
            else:
                merged[key] = value
                origin[(key,)] = f
    return merged, origin, diags


def validate_files(files: tuple[SourceFile, ...], root: str | Path = ".") -> ValidProject:
    """Merge and validate loaded files into a frozen `Project`; raise with every problem."""
    merged, origin, diags = merge_files(files)
    sources = Sources(Path(root), files, origin)
    if not files or all(f.data is None for f in files):
        raise LlmspecError.one(
            "E012",
            "the project is empty",
            Loc(files[0].path, 1, 1) if files else None,
            "start with `version: 1` and `name: my-project`",
        )
    try:
        project = Project.model_validate(merged)
    except ValidationError as e:
        diags.extend(_diagnostic(err, merged, sources) for err in _root_causes(e.errors()))
        project = None
    if any(d.code == "E011" and d.loc and d.loc.line == 1 for d in diags) and project is None:
        diags = [d for d in diags if d.code != "E012"]  # a file that is not a mapping says it all
    if diags or project is None:
        raise LlmspecError(sorted(_unique(diags), key=Diagnostic.sort_key))
    return ValidProject(project, sources, merged)


def _root_causes(errors: list[Any]) -> list[Any]:
    """Errors without the consequences of others: a list too short only because its items
    failed (`families: [jailbrek]` is one mistake, not two)."""
    inner = [tuple(e["loc"]) for e in errors]
    return [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(len(o) > len(e["loc"]) and o[: len(e["loc"])] == tuple(e["loc"]) for o in inner)
        )
    ]


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        k = (d.loc, d.code, d.message)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"the number `{value}`"
    if isinstance(value, str):
        return f"the string `{value[:40]}`"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _data_path(loc: tuple, data: Any) -> tuple[KeyPath, bool]:
    """Drop the parts of a pydantic error location that are not in the data (union tags)."""
    path: list[Any] = []
    cur = data
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            break
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and not _is_tag(part):
            path.append(part)  # a missing or unknown field: the last part
            cur = None
        # else: a union tag such as `transformers` or a function-after label: not in the data
    return tuple(path), is_key


_TAGS = frozenset(
    t for tags in (*DISCRIMINATORS.values(), *(v[1] for v in TAG_CALLABLES.values())) for t in tags
)


def _is_tag(part: str) -> bool:
    """A part of a pydantic error location that names a union member, not a key in the data."""
    return part in _TAGS or part.startswith(("function-", "tagged-union", "union["))


def _model_at(path: KeyPath, data: Any) -> type[BaseModel] | None:
    """The spec model that describes the mapping at `path`, for did-you-mean on field names."""
    tp: Any = Project
    cur = data
    for part in path:
        tp = _pick(tp, cur)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or n: f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[part].annotation
        else:
            origin = typing.get_origin(tp)
            args = typing.get_args(tp)
            if origin is dict:
                tp = args[1]
            elif origin in (tuple, list):
                tp = args[0]
            else:
                return None
        cur = (
            cur.get(part)
            if isinstance(cur, dict)
            else (
                cur[part]
                if isinstance(cur, list) and isinstance(part, int) and part < len(cur)
                else None
            )
        )
    tp = _pick(tp, cur)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _pick(tp: Any, value: Any) -> Any:
    """Resolve Annotated/Optional/discriminated unions against the data."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            options = [_unannotated(a) for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(options) == 1:
                tp = options[0]
                continue
            for m in models:
                if tag_matches(m, value):
                    return m
            return models[0] if len(models) == 1 else tp
        return tp


def _unannotated(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def tag_matches(model: type[BaseModel], value: Any) -> bool:
    """Whether `value` (data) carries the union tag of `model`, or lacks it where the tag has a
    default (a suite without `kind` is an `eval` suite)."""
    if not isinstance(value, dict):
        return False
    tags = {"provider", "kind"}
    for disc in tags & set(model.model_fields):
        f = model.model_fields[disc]
        tag = value[disc] if disc in value else (None if f.is_required() else f.default)
        if tag in typing.get_args(f.annotation):
            return True
    return False


def _where(path: KeyPath) -> str:
    if len(path) >= 2 and path[0] in SINGULAR:
        what = f"{SINGULAR[path[0]]} `{path[1]}`"
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:])[1:]
        return f"{what}" + (f" (at `{rest}`)" if rest else "")
    return "the project"


def _diagnostic(err: Any, data: dict, sources: Sources) -> Diagnostic:
    etype = err["type"]
    path, is_key = _data_path(err["loc"], data)
    value = err.get("input")
    if etype == "extra_forbidden":
        name = str(path[-1])
        parent = _model_at(path[:-1], data)
        known = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
        hint = _other_kind(name, parent) or did_you_mean(name, known)
        where = _where(path[:-1])
        return Diagnostic(
            "E010", f"unknown field `{name}` in {where}", sources.loc(path, key=True), hint
        )
    if etype == "missing":
        name = str(path[-1])
        return Diagnostic(
            "E012",
            f"missing required field `{name}` in {_where(path[:-1])}",
            sources.loc(path[:-1], key=True) if len(path) > 1 else sources.loc(()),
            f"add `{name}: ...`",
        )
    if is_key:
        return Diagnostic(
            "E013",
            f"`{value}` is not a valid name",
            sources.loc(path + (value,), key=True) if isinstance(value, str) else sources.loc(path),
            "names start with a letter and use letters, digits, `_` and `-` (at most 64)",
        )
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        disc = err.get("ctx", {}).get("discriminator", "'provider'").strip("'")
        known = list(DISCRIMINATORS.get(disc, ()))
        if disc in TAG_CALLABLES:
            disc, tags = TAG_CALLABLES[disc]
            known = list(tags)
        if etype == "union_tag_not_found":
            return Diagnostic(
                "E012",
                f"missing `{disc}` in {_where(path)}",
                sources.loc(path, key=True) if path else sources.loc(()),
                f"add `{disc}:` with one of: {', '.join(known)}",
            )
        tag = err.get("ctx", {}).get("tag")
        return Diagnostic(
            "E013",
            f"unknown {disc} `{tag}` in {_where(path)}",
            sources.loc(path + (disc,)),
            did_you_mean(str(tag), known),
        )
    if etype in _TYPE_NAMES:
        want = _TYPE_NAMES[etype]
        raw = sources.raw(path)
        hint = None
        if want == "a string" and raw is not None:
            what = _describe(value).split(" `")[0].replace("the ", "a ")
            hint = f'YAML reads `{raw}` as {what}; quote it: "{raw}"'
        elif want in ("a number", "an integer", "true or false") and isinstance(value, str):
            hint = "write it without quotes" if _looks_typed(value) else None
        return Diagnostic(
            "E011",
            f"expected {want} in {_where(path)}, got {_describe(value)}",
            sources.loc(path),
            hint,
        )
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        known = [t.strip().strip("'") for t in expected.replace(" or ", ",").split(",")]
        known = [k for k in known if k]
        hint = did_you_mean(str(value), known) if isinstance(value, str) else None
        raw = sources.raw(path)
        if raw is not None and hint is None:
            hint = f"expected one of {expected}"
        return Diagnostic(
            "E013",
            f"{_describe(value)} is not allowed in {_where(path)}; expected {expected}",
            sources.loc(path),
            hint,
        )
    if etype == "string_pattern_mismatch":
        what, hint = PATTERNS.get(
            str(path[-1]) if path else "",
            ("a valid name", "names start with a letter and use letters, digits, `_` and `-` "
             "(at most 64)"),
        )  # fmt: skip
        return Diagnostic("E013", f"`{value}` is not {what} in {_where(path)}", sources.loc(path),
                          hint)  # fmt: skip
    msg = err["msg"]
    if etype == "value_error":
        msg = msg.removeprefix("Value error, ")
    return Diagnostic("E013", f"{msg} in {_where(path)}", sources.loc(path), None)


def _other_kind(name: str, parent: type[BaseModel] | None) -> str | None:
    """`probes` on an eval suite: the field belongs to another kind of the same union."""
    from llmspec.spec import SUITE_TYPES

    for tag, unions in (("kind", SUITE_TYPES),):
        if parent in unions.values() and name not in parent.model_fields:
            owners = [k for k, m in unions.items() if name in m.model_fields]
            if owners:
                mine = typing.get_args(parent.model_fields[tag].annotation)[0]
                if parent.model_fields[tag].is_required():
                    return f"`{name}` belongs to `{tag}: {owners[0]}` suites, not `{tag}: {mine}`"
                return f"`{name}` belongs to `{tag}: {owners[0]}` suites: add `{tag}: {owners[0]}`"
    return None


PATTERNS = {
    "route": (
        "a route",
        "a route starts with `/` and names path segments, without a `/` at "
        "the end: `/`, `/support`, `/v1/bot`",
    ),
    "every": ("a duration", "a number and a unit: `90s`, `30m`, `6h`, `1d`"),
}
"""Fields with a pattern that are not names: what they are, and how to write one."""


def _looks_typed(value: str) -> bool:
    from llmspec.load import resolve_scalar

    return not isinstance(resolve_scalar(value), str)
