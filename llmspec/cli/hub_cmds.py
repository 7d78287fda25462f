"""Commands over the run history: `runs` (list the recorded applies) and `view` (the local
results hub). `report --run ID` (in `run_cmds`) renders one recorded run. The web stack is
imported inside `view` only."""

from __future__ import annotations

import json
from typing import Any

import click

from llmspec.cli import handle_errors, main
from llmspec.errors import LlmspecError, Loc

DEFAULT_PORT = 8765


def _history(path: str, required: bool = True) -> Any:
    from llmspec.hub.history import connect, history_path
    from llmspec.hub.queries import no_history
    from llmspec.project import project_root

    root = project_root(path)
    conn = connect(root, readonly=True)
    if conn is None and required:
        raise no_history(str(history_path(root)))
    return conn


def recorded_results(path: str, run_id: int) -> Any:
    """The `Results` a recorded run stored, for the reporters."""
    from pydantic import ValidationError

    from llmspec.hub.history import history_path
    from llmspec.hub.queries import run_results
    from llmspec.project import project_root
    from llmspec.results import RESULTS_VERSION, Results

    conn = _history(path)
    try:
        doc = run_results(conn, run_id)
    finally:
        conn.close()
    where = Loc(str(history_path(project_root(path))))
    if doc is None:
        raise LlmspecError.one(
            "E122",
            f"run {run_id} recorded no results (it ended before they were collected)",
            where,
            "`llmspec runs` shows each run's status",
        )
    try:
        return Results.model_validate(doc)
    except ValidationError:
        raise LlmspecError.one(
            "E122",
            f"run {run_id} recorded results version {doc.get('results_version')}, which this "
            f"llmspec cannot render (it reads version {RESULTS_VERSION})",
            where,
            "`llmspec view` shows any recorded run; or use the llmspec version that recorded it",
        ) from None


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: every run's status, commit, timings, lock digest and suite verdicts.",
)
@handle_errors
def runs(path: str, fmt: str) -> None:
    """List the applies recorded in the project's run history (.llmspec/history.sqlite).

    Each apply is recorded when it starts and completed when it ends (also when it is
    interrupted): its status, the git commit, how long it took, what ran, the lock it produced
    and each suite's verdict. The history never enters llmspec.lock.

    \b
    Examples:
      llmspec runs specs/
      llmspec runs specs/ --format json
      llmspec report specs/ --run 2          # render one of them
      llmspec view specs/                    # browse and compare them
    """
    from llmspec.hub.queries import list_runs

    conn = _history(path, required=False)
    try:
        items = list_runs(conn)
    finally:
        if conn is not None:
            conn.close()
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("No runs recorded yet: `llmspec apply` records each run.")
        return
    click.echo(render_runs(items), nl=False)


def render_runs(items: list[dict[str, Any]]) -> str:
    from llmspec.hashing import short
    from llmspec.report import table

    marks = {"passed": "ok", "failed": "FAIL", "not run": "-", "incomplete": "partial"}
    rows = []
    for r in items:
        summary = r.get("summary") or {}
        commit = (r.get("git_commit") or "-")[:8] + ("+" if r.get("git_dirty") else "")
        suites = ", ".join(
            f"{s['name']} {marks.get(s['status'], s['status'])}" for s in r.get("suites") or []
        )
        rows.append(
            [
                str(r["id"]),
                (r.get("started") or "")[:19].replace("T", " "),
                r["status"],
                commit,
                f"{r['seconds']:.1f}s" if r.get("seconds") is not None else "-",
                str(summary.get("ran", "-")),
                str(summary.get("reused", "-")),
                short(r["lock_digest"]) if r.get("lock_digest") else "-",
                suites or "-",
            ]
        )
    header = ["id", "started (UTC)", "status", "commit", "time", "ran", "reused", "lock"]
    # the suites' verdicts are free text: flush left, after the aligned columns
    lines = table(header, [r[:-1] for r in rows])
    last = ["suites"] + [r[-1] for r in rows]
    return "\n".join(f"{line}  {cell}" for line, cell in zip(lines, last, strict=True)) + "\n"


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback exposes every run to the network.",
)
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@handle_errors
def view(path: str, port: int, host: str, no_browser: bool) -> None:
    """Serve the results hub: runs over time, two runs side by side, each row in detail.

    A local web app over the run history: per suite and metric the runs over time with their
    intervals; a comparison of any two runs (what changed in the spec and the lock, which
    metrics moved, with paired intervals); every row's input, retrieved chunks, output,
    reference and metric values, filtered to rows that failed or changed. The same data is
    served as JSON under /api/ (/api/runs lists the runs). Stop it with Ctrl-C.

    \b
    Examples:
      llmspec view specs/
      llmspec view specs/ --port 0 --no-browser
      curl -s http://127.0.0.1:8765/api/runs
    """
    from llmspec.hub.server import is_loopback, serve
    from llmspec.project import project_root

    if not is_loopback(host):
        click.echo(
            f"warning: serving on {host}, not loopback: the hub has no authentication, and "
            "whoever reaches this address can read every run's inputs and outputs",
            err=True,
        )
    serve(project_root(path), host=host, port=port, open_browser=not no_browser, echo=click.echo)
