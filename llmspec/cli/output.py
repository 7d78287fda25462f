"""What the CLI prints besides plans and reports: validate's summary, diagnostics as JSON, and
the end of an apply (its summary table and the located failures)."""

from __future__ import annotations

from typing import Any

from llmspec.errors import Diagnostic


def diagnostics_json(diags: Any) -> list[dict[str, Any]]:
    out = []
    for d in diags:
        loc = d.loc
        out.append(
            {
                "code": d.code,
                "severity": d.severity,
                "message": d.message,
                "file": loc.file if loc else None,
                "line": loc.line if loc else None,
                "col": loc.col if loc else None,
                "hint": d.hint,
                "notes": list(d.notes),
            }
        )
    return out


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def project_summary(resolved: Any) -> str:
    """What a valid project declares, in a few lines."""
    from llmspec.spec import suite_target

    p = resolved.spec
    lines = [f"{p.name}: valid ({_count(len(resolved.sources.files), 'file')})"]
    rows = []
    for name, m in p.models.items():
        where = getattr(m, "path", None) or getattr(m, "model", None) or ""
        if getattr(m, "finetune", None) is not None:
            ft = m.finetune
            where = f"{ft.method} fine-tune of {ft.from_} on {ft.dataset}"
        elif getattr(m, "quantize", None) is not None:
            where = f"{m.quantize.method} of {m.quantize.from_}"
        rows.append(("model", name, f"{m.provider} {where}".strip()))
    for name in p.schemas:
        rows.append(("schema", name, "JSON Schema"))
    for name, pr in p.prompts.items():
        out = pr.output
        kind = (
            f"-> schema {out.schema_}"
            if out and out.schema_
            else "-> regex"
            if out and out.regex
            else f"-> one of {len(out.choice)} choices"
            if out and out.choice
            else "free text"
        )
        rows.append(("prompt", name, kind))
    for name, k in p.knowledge.items():
        src = k.source.path or f"dataset {k.source.dataset}"
        rows.append(("knowledge", name, f"{src}, top {k.top_k}, {k.embed}"))
    for name, d in p.datasets.items():
        n = resolved.row_counts.get(name)
        src = d.path or f"generated from {d.generate.from_}"
        rows.append(("dataset", name, src + (f", {_count(n, 'row')}" if n is not None else "")))
    for name, s in p.suites.items():
        t = suite_target(p, s)
        target = f"{', '.join(t.prompt_names)} x {', '.join(t.models)}"
        if t.deployment is not None:
            target = f"deployment {t.deployment} ({target})"
        if s.kind == "redteam":
            pr = s.probes
            what = (
                f"red team of {target}: {_count(len(pr.families), 'family', 'families')}, "
                f"{_count(len(pr.strategies), 'strategy', 'strategies')}, {pr.per_family} "
                f"per family; {_count(len(s.gates), 'gate')}"
            )
        else:
            what = (
                f"{target} on {s.dataset}; "
                f"{_count(len(s.metrics), 'metric')}, {_count(len(s.gates), 'gate')}"
            )
        rows.append(("suite", name, what))
    for name, d in p.deployments.items():
        req = f" after {', '.join(d.requires)}" if d.requires else ""
        rows.append(("deployment", name, f"{d.model} + {d.prompt}{req}"))
    w0 = max((len(r[0]) for r in rows), default=0)
    w1 = max((len(r[1]) for r in rows), default=0)
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def failure_diagnostics(report: Any, graph: Any) -> list[Diagnostic]:
    """Each job that did not finish, at the spec line of what it runs, with a code."""
    out = []
    for job_id, error in report.failed.items():
        job = graph.jobs[job_id]
        out.append(
            Diagnostic(
                "E091",
                f"job `{job_id}` failed: {error}",
                job.loc,
                "the jobs that finished are kept; fix this and run apply again to resume",
            )
        )
    for job_id, error in report.blocked.items():
        out.append(
            Diagnostic(
                "E092",
                f"job `{job_id}` is blocked: {error}",
                graph.jobs[job_id].loc,
                "see the failed gates above; a deployment ships only what passed",
            )
        )
    for job_id, error in report.skipped.items():
        out.append(
            Diagnostic("E093", f"job `{job_id}` did not run: {error}", graph.jobs[job_id].loc)
        )
    for name, error in report.ship_failed.items():
        job = graph.jobs.get(f"deploy.{name}")
        out.append(
            Diagnostic(
                "E094",
                f"deployment `{name}` was not shipped: {error}",
                job.loc if job is not None else None,
                "what ran before keeps running; `llmspec plan` shows what is not in place",
            )
        )
    return out


def deploy_lines(report: Any) -> list[str]:
    """What apply put in place or removed on stateful targets."""
    lines = [f"Deployed `{name}`: {url}" for name, url in sorted(report.shipped.items())]
    lines += [f"Destroyed `{name}`: no longer in the spec" for name in sorted(report.destroyed)]
    return lines


def apply_line(report: Any, failing: list[str]) -> str:
    parts = [f"{len(report.done)} ran", f"{len(report.reused)} reused"]
    for name, word in (("failed", "failed"), ("skipped", "skipped"), ("blocked", "blocked"),
                       ("ship_failed", "not shipped")):  # fmt: skip
        n = len(getattr(report, name))
        if n:
            parts.append(f"{n} {word}")
    text = "Apply: " + ", ".join(parts) + "."
    if report.exported:
        text += f" Wrote {', '.join(report.exported)}."
    text += " llmspec.lock updated." if report.lock_written else " llmspec.lock unchanged."
    if failing:
        text += f"\nGates failed: {', '.join(failing)}."
    if report.interrupted:
        text += "\nInterrupted: finished jobs are kept; run apply again to resume."
    return text
