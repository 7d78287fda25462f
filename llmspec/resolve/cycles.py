"""Cycles among references that can loop: datasets <-> knowledge, deployments' `after`, models
made from models (`finetune.from`, `quantize.from`).

Iterative depth-first search, so a chain of any length is fine (no recursion limit)."""

from __future__ import annotations

from typing import Any

from llmspec.load import KeyPath
from llmspec.spec import SINGULAR

Node = tuple[str, str]


def _edges(p: Any) -> dict[Node, list[tuple[Node, KeyPath]]]:
    edges: dict[Node, list[tuple[Node, KeyPath]]] = {}
    for name, d in p.datasets.items():
        if d.generate is not None:
            edges.setdefault(("datasets", name), []).append(
                (("knowledge", d.generate.from_), ("datasets", name, "generate", "from"))
            )
    for name, k in p.knowledge.items():
        if k.source.dataset is not None:
            edges.setdefault(("knowledge", name), []).append(
                (("datasets", k.source.dataset), ("knowledge", name, "source", "dataset"))
            )
    for name, m in p.models.items():
        for field in ("finetune", "quantize"):
            made = getattr(m, field, None)
            if made is not None:
                edges.setdefault(("models", name), []).append(
                    (("models", made.from_), ("models", name, field, "from"))
                )
    for name, dep in p.deployments.items():
        for i, a in enumerate(dep.after):
            edges.setdefault(("deployments", name), []).append(
                (("deployments", a), ("deployments", name, "after", i))
            )
    return edges


def check_cycles(c: Any) -> None:
    edges = _edges(c.p)
    state: dict[Node, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset] = set()
    for start in sorted(edges):
        if start in state:
            continue
        path: list[Node] = [start]
        its = [iter(edges.get(start, []))]
        state[start] = 1
        while its:
            step = next(its[-1], None)
            if step is None:
                state[path.pop()] = 2
                its.pop()
                continue
            nxt, where = step
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    text = " -> ".join(f"{SINGULAR[s]} `{n}`" for s, n in [*cycle, nxt])
                    c.error(
                        "E021",
                        f"cyclic reference: {text}",
                        where,
                        "break the cycle: one of these must not depend on the other",
                    )
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                its.append(iter(edges.get(nxt, [])))
