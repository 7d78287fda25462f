"""Every `${...}` in a spec must be a well-formed `${env:NAME}`; secret fields must be one."""

from __future__ import annotations

from typing import Any

from llmspec.load import KeyPath
from llmspec.secrets import ANY_REF, ENV_REF


def check_env_refs(c: Any) -> None:
    _walk(c, c.data, ())


def _walk(c: Any, value: Any, path: KeyPath) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if len(path) >= 2 and path[0] == "schemas":
                continue  # JSON Schema text is data, not configuration
            _walk(c, v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(c, v, path + (i,))
    elif isinstance(value, str) and "${" in value:
        if len(path) >= 3 and path[0] == "prompts" and path[2] in ("system", "template"):
            return  # template text may mention ${...} literally
        for m in ANY_REF.finditer(value):
            if not ENV_REF.fullmatch(m.group(0)):
                c.error(
                    "E050",
                    f"malformed secret reference `{m.group(0)}`",
                    path,
                    "write `${env:NAME}` with NAME made of letters, digits and `_`",
                )
