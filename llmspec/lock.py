"""`llmspec.lock`: what was run, with which versions and hashes, and what came out.

The lock is committed. It is deterministic (sorted keys, fixed formatting, no timestamps, floats
rounded), so a diff of it shows exactly what changed; timestamps and logs go to
`.llmspec/runs/`. It is written atomically: a crash leaves the old lock or the new one.

Sections: `toolchain`; the facts about inputs (`models`, `prompts`, `schemas`, `datasets`,
`knowledge`); `jobs` (per job its kind, key, inputs and output digest); and one section per job
kind that records results (`suites` from gates, `deployments` from deploys, ...), named by the
kind's record.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from llmspec.errors import LlmspecError, Loc
from llmspec.fsutil import write_atomic
from llmspec.hashing import has_lone_surrogate

LOCK_VERSION = 2
LOCK_NAME = "llmspec.lock"
FACT_SECTIONS = ("models", "prompts", "schemas", "datasets", "knowledge")
_FIELDS = ("lock_version", "project", "toolchain", *FACT_SECTIONS, "jobs")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockedJob(_Frozen):
    kind: str
    key: str
    inputs: dict[str, Any] = Field(
        description="each input of the job: a short scalar as itself, anything else by digest"
    )
    output: str = Field(description="digest of the job's output")
    entry: str | None = Field(
        None, description="digest of what the job recorded in its kind's result section"
    )

    @model_serializer(mode="wrap")
    def _drop_empty_entry(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("entry") is None:
            data.pop("entry", None)
        return data


class Lock(_Frozen):
    """The lockfile. Fact sections are free-form but fully determined by the spec; result
    sections (`suites`, `deployments`, ...) belong to the job kinds that fill them."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="llmspec lock")

    lock_version: Literal[2] = LOCK_VERSION
    project: str
    toolchain: dict[str, str] = {}
    models: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    datasets: dict[str, Any] = {}
    knowledge: dict[str, Any] = {}
    jobs: dict[str, LockedJob] = {}
    sections: dict[str, dict[str, Any]] = Field(
        {}, description="result sections by name, written at the top level of the file"
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_sections(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sections" not in data:
            extra = {k: v for k, v in data.items() if k not in _FIELDS}
            data = {k: v for k, v in data.items() if k in _FIELDS} | {"sections": extra}
        return data

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        sections = data.pop("sections", {})
        return data | {k: v for k, v in sections.items() if k not in data}

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})

    @property
    def suites(self) -> dict[str, Any]:
        return self.section("suites")

    def fact(self, section: str, name: str) -> Any:
        return getattr(self, section, {}).get(name) if section in FACT_SECTIONS else None


def lock_path(root: Path) -> Path:
    return Path(root) / LOCK_NAME


def render_lock(lock: Lock) -> bytes:
    """The lock's bytes: same lock, same bytes, whatever the machine or PYTHONHASHSEED."""
    data = lock.model_dump(mode="json")
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


_HIGH, _LOW = r"\\u[dD][89abAB][0-9a-fA-F]{2}", r"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(f"{_HIGH}(?!{_LOW})|(?<!{_HIGH}){_LOW}")


def parse_lock(text: str | bytes, where: str) -> Lock:
    """The lock in `text` (read from `where`); raises E084 at a merge conflict's first line,
    E080 at the spot where it is damaged."""
    data = _lock_json(text, where)
    version = data.get("lock_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > LOCK_VERSION:
        raise LlmspecError.one(
            "E081",
            f"lockfile version {version} is newer than this llmspec reads ({LOCK_VERSION})",
            Loc(where),
            "upgrade llmspec",
        )
    if has_lone_surrogate(data):
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        at = _LONE_SURROGATE.search(raw)
        line = raw.count("\n", 0, at.start()) + 1 if at else 0
        raise LlmspecError.one(
            "E080",
            "lockfile holds a lone surrogate (a `\\ud800`-`\\udfff` escape without its pair)",
            Loc(where, line),
            "restore it from version control, or delete it to start a new one",
        )
    if version == 1 and isinstance(data, dict):
        data = _from_v1(data)
    try:
        return Lock.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise LlmspecError.one(
            "E080",
            f"lockfile is damaged at `{path}`: {first['msg']}",
            Loc(where),
            "restore it from version control, or delete it to start a new one",
        ) from None


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 lock read as version 2: its facts and results stay readable; its job keys
    were computed another way, so every job shows as changed."""
    out = dict(data)
    out["lock_version"] = LOCK_VERSION
    out["jobs"] = {
        jid: {**j, "inputs": {"lock_version": 1}} for jid, j in (data.get("jobs") or {}).items()
    }
    return out


_RESTORE = (
    "restore it from version control (git checkout -- llmspec.lock), or delete it to start a "
    "new one"
)
_CONFLICT = re.compile(r"^(?:<{7}|={7}|>{7}|\|{7})(?: |$)", re.M)


def _lock_json(text: str | bytes, where: str) -> Any:
    """The lock's JSON, with every way it can be unreadable named at its line."""
    name = Path(where).name
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line = text[: e.start].count(b"\n") + 1
            raise LlmspecError.one(
                "E080", "lockfile is not valid UTF-8", Loc(where, line, 1), _RESTORE
            ) from None
    conflict = _CONFLICT.search(text)
    if conflict is not None:
        line = text.count("\n", 0, conflict.start()) + 1
        raise LlmspecError.one(
            "E084",
            f"merge conflict in {name} at line {line}: resolve it, then run `llmspec apply`",
            Loc(where, line, 1),
            f"llmspec writes the lock: keep either side (git checkout --ours {name}, or "
            f"--theirs) and `llmspec apply` brings it up to date",
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LlmspecError.one(
            "E080", f"lockfile is not valid JSON: {e.msg}", Loc(where, e.lineno, e.colno), _RESTORE
        ) from None
    except (ValueError, RecursionError) as e:  # numbers past str()'s digits, absurd nesting
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise LlmspecError.one(
            "E080", f"lockfile is not valid JSON: {why}", Loc(where, 1, 1), _RESTORE
        ) from None


def read_lock(root: Path) -> Lock | None:
    """The project's lock, or None when there is none yet. Only a regular file is read, opened
    without blocking; anything else at its path (a folder, a FIFO) is E080."""
    path = lock_path(root)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise _not_a_file(path)
        with os.fdopen(os.open(path, flags), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise _not_a_file(path)
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise LlmspecError.one(
            "E080", f"cannot read the lockfile: {e.strerror}", Loc(str(path)), _RESTORE
        ) from None
    return parse_lock(data, str(path))


def _not_a_file(path: Path) -> LlmspecError:
    return LlmspecError.one(
        "E080",
        f"{path.name} is not a regular file",
        Loc(str(path)),
        f"remove it; `llmspec apply` writes a new {path.name}",
    )


def lock_digest(root: Path) -> str:
    """What a saved plan remembers of the lock it was made against."""
    from llmspec.hashing import file_digest

    try:
        return file_digest(lock_path(root).read_bytes())
    except FileNotFoundError:
        return "none"


def write_lock(root: Path, lock: Lock) -> bool:
    """Write the lock atomically; False when the bytes are unchanged (nothing written)."""
    path = lock_path(root)
    data = render_lock(lock)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    # The temp file lives in the gitignored .llmspec/tmp/: a kill before the rename leaves no
    # stray file beside the lock for `git add -A` to pick up. Only apply writes the lock, under
    # the run lock, so a temp file found there now is a leftover of a killed apply.
    tmp_dir = Path(root) / ".llmspec" / "tmp"
    for stale in tmp_dir.glob(f".{LOCK_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)
    write_atomic(path, data, tmp_dir=tmp_dir)
    return True


def json_schema() -> dict[str, Any]:
    schema = Lock.model_json_schema()
    schema["properties"].pop("sections", None)
    schema["additionalProperties"] = {
        "type": "object",
        "description": "a result section filled by a job kind (suites, deployments, ...)",
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/lock.schema.json"
    return schema


def rounded(x: float | None, places: int = 6) -> float | None:
    """Floats in the lock are rounded so that noise in the last bits does not show as a change."""
    if x is None:
        return None
    r = round(float(x), places)
    return 0.0 if r == 0 else r
