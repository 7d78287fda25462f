"""Differences between two JSON values, in words: the one vocabulary of `plan`'s reasons and
`llmspec lock diff`.

    >>> describe({"top_k": 2, "chunk": {"size": 400}}, {"top_k": 3, "chunk": {"size": 300}})
    ['chunk.size 400 -> 300', 'top_k 2 -> 3']
    >>> describe({"files": {"a.md": "sha256:1", "b.md": "sha256:2"}},
    ...          {"files": {"a.md": "sha256:9", "c.md": "sha256:3"}})
    ['files: added c.md; removed b.md; changed a.md']
    >>> describe({"template": "sha256:aa"}, {"template": "sha256:bb"})
    ['template changed']
"""

from __future__ import annotations

import json
from typing import Any

SHOWN_TEXT = 40  # longer strings are "changed", not shown
SHOWN_FILES = 3
PHRASES = {
    "finetune": "llmspec.jobs.finetune:describe_change",
    "quantize": "llmspec.jobs.quantize:describe_change",
}
"""Parts of a fact that say it better in their own words (a made model's provenance:
"training data `train` 24 -> 25 rows, re-tuned"): key at the top of a fact -> "module:function"
(old, new) -> phrases."""


def _phrase(key: str, old: Any, new: Any) -> list[str]:
    import importlib

    module, _, attr = PHRASES[key].partition(":")
    return getattr(importlib.import_module(module), attr)(old, new)


def is_digest(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("sha256:")


def _show(value: Any) -> str:
    if value is None:
        return "none"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _shown(value: Any) -> bool:
    if is_digest(value) or isinstance(value, dict):
        return False
    text = _show(value)
    return len(text) <= SHOWN_TEXT


def _names(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN_FILES} more" if len(items) > SHOWN_FILES else ""
    return ", ".join(items[:SHOWN_FILES]) + more


def describe(old: Any, new: Any, path: str = "") -> list[str]:
    """Phrases saying how `new` differs from `old`, leaf by leaf (sorted by path)."""
    if old == new:
        return []
    label = path or "value"
    if isinstance(old, dict) and isinstance(new, dict):
        values = list(old.values()) + list(new.values())
        keys = set(old) | set(new)
        if values and all(is_digest(v) for v in values) and all("." in k or "/" in k for k in keys):
            # a table of files by name
            added = sorted(set(new) - set(old))
            removed = sorted(set(old) - set(new))
            changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
            groups = (("added", added), ("removed", removed), ("changed", changed))
            parts = [f"{word} {_names(ks)}" for word, ks in groups if ks]
            return [f"{label}: {'; '.join(parts)}"]
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if not path and k in PHRASES and isinstance(old.get(k), dict):
                if isinstance(new.get(k), dict) and old[k] != new[k]:
                    out += _phrase(k, old[k], new[k])
                    continue
            if k not in old:
                out.append(f"{sub} added" + (f" ({_show(new[k])})" if _shown(new[k]) else ""))
            elif k not in new:
                out.append(f"{sub} removed")
            else:
                out += describe(old[k], new[k], sub)
        return out
    if (
        isinstance(old, list)
        and isinstance(new, list)
        and any(isinstance(v, dict | list) for v in old + new)
    ):
        out = []
        for i in range(max(len(old), len(new))):
            if i >= len(old):
                out.append(f"{path}[{i}] added")
            elif i >= len(new):
                out.append(f"{path}[{i}] removed")
            else:
                out += describe(old[i], new[i], f"{path}[{i}]")
        return out
    if _shown(old) and _shown(new):
        delta = ""
        if (
            isinstance(old, int | float)
            and isinstance(new, int | float)
            and not isinstance(old, bool)
            and not isinstance(new, bool)
            and isinstance(old, float) | isinstance(new, float)
        ):
            delta = f" ({new - old:+.4g})"
        return [f"{label} {_show(old)} -> {_show(new)}{delta}"]
    return [f"{label} changed"]


def sentence(phrases: list[str], limit: int = 4) -> str:
    """Phrases joined for one line of a plan or a lock diff.

    >>> sentence(["a", "b", "c", "d", "e", "f"])
    'a, b, c, d and 2 more'
    >>> sentence(["content changed", "rows 6 -> 9"])
    'rows 6 -> 9, content changed'
    """
    phrases = sorted(phrases, key=lambda p: p.endswith(" changed"))  # values first
    if len(phrases) <= limit:
        return ", ".join(phrases)
    return ", ".join(phrases[:limit]) + f" and {len(phrases) - limit} more"
