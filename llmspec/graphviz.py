"""The job graph as Mermaid or Graphviz DOT, for a reviewer to look at."""

from __future__ import annotations

from typing import Any

SHAPES_DOT = {
    "index": "cylinder",
    "testgen": "folder",
    "generate": "box",
    "score": "ellipse",
    "gate": "diamond",
    "deploy": "house",
}


def _node(job_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in job_id)


def render_mermaid(graph: Any, actions: dict[str, str] | None = None) -> str:
    actions = actions or {}
    lines = ["flowchart LR"]
    for job in graph.jobs.values():
        label = f"{actions[job.id]} {job.id}" if job.id in actions else job.id
        open_, close = {"gate": ("{", "}"), "index": ("[(", ")]"), "score": ("([", "])")}.get(
            job.kind, ("[", "]")
        )
        lines.append(f'  {_node(job.id)}{open_}"{label}"{close}')
    for job in graph.jobs.values():
        for dep in job.deps:
            lines.append(f"  {_node(dep)} --> {_node(job.id)}")
    return "\n".join(lines) + "\n"


def render_dot(graph: Any, actions: dict[str, str] | None = None) -> str:
    actions = actions or {}
    lines = [f'digraph "{graph.project}" {{', "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for job in graph.jobs.values():
        label = f"{actions[job.id]} {job.id}" if job.id in actions else job.id
        lines.append(f'  "{job.id}" [label="{label}", shape={SHAPES_DOT[job.kind]}];')
    for job in graph.jobs.values():
        for dep in job.deps:
            lines.append(f'  "{dep}" -> "{job.id}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
