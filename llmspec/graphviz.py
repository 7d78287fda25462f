"""The job graph as Mermaid or Graphviz DOT, for a reviewer to look at. Each kind's record
names its shape; the plan's action marks each job."""

from __future__ import annotations

from typing import Any

# shape name -> (Mermaid open, Mermaid close, DOT shape)
SHAPES = {
    "box": ("[", "]", "box"),
    "cylinder": ("[(", ")]", "cylinder"),
    "folder": ("[/", "/]", "folder"),
    "ellipse": ("([", "])", "ellipse"),
    "diamond": ("{", "}", "diamond"),
    "house": ("[\\", "/]", "house"),
    "hexagon": ("{{", "}}", "hexagon"),
    "note": (">", "]", "note"),
}


def _node(job_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in job_id)


def _shape(kind: str) -> tuple[str, str, str]:
    from llmspec.jobs import kind as record

    return SHAPES.get(record(kind).shape, SHAPES["box"])


def _label(job: Any, actions: dict[str, str]) -> str:
    return f"{actions[job.id]} {job.id}" if job.id in actions else job.id


def render_mermaid(graph: Any, actions: dict[str, str] | None = None) -> str:
    actions = actions or {}
    lines = ["flowchart LR"]
    for job in graph.jobs.values():
        open_, close, _ = _shape(job.kind)
        label = _label(job, actions).replace('"', "'")
        lines.append(f'  {_node(job.id)}{open_}"{label}"{close}')
    for job in graph.jobs.values():
        for dep in job.deps.values():
            lines.append(f"  {_node(dep)} --> {_node(job.id)}")
    return "\n".join(lines) + "\n"


def render_dot(graph: Any, actions: dict[str, str] | None = None) -> str:
    actions = actions or {}
    lines = [f'digraph "{graph.project}" {{', "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for job in graph.jobs.values():
        label = _label(job, actions).replace('"', '\\"')
        lines.append(f'  "{job.id}" [label="{label}", shape={_shape(job.kind)[2]}];')
    for job in graph.jobs.values():
        for dep in job.deps.values():
            lines.append(f'  "{dep}" -> "{job.id}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
