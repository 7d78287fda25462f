"""Synthetic run histories for the hub's tests and bench/hub.py: results documents shaped as
`llmspec.results.Results`, with rows whose outputs change from run to run at a given rate.

Intervals here are normal approximations (mean +- 1.96 sd / sqrt(n)): the data is made up,
and a bootstrap over 10,000 rows per run would only slow the set-up down.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmspec.hub.history import Recorder
from llmspec.lock import Lock, render_lock


def _stats(values: list[float | None]) -> dict[str, Any]:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0, "missing": len(values)}
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / max(1, n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return {
        "n": n,
        "missing": len(values) - n,
        "mean": round(mean, 6),
        "min": min(xs),
        "max": max(xs),
        "lcb95": round(mean - half, 6),
        "ucb95": round(mean + half, 6),
        "rate": round(sum(1 for x in xs if x == 1.0) / n, 6),
    }


def iter_results(
    runs: int,
    rows: int = 20,
    change: float = 0.2,
    seed: int = 0,
    shift: float = 0.0,
    variants: tuple[str, ...] = ("base",),
) -> Iterator[dict[str, Any]]:
    """The results of `runs` runs in turn: one suite `quality` with `variants`, `rows` rows
    each. From run to run a `change` share of the rows gets a new output and new scores; the
    others keep theirs (latency aside). `shift` moves the changed rows' rouge_l up."""
    flips = random.Random(seed)
    last = {v: [0] * rows for v in variants}  # the run in which each row last changed
    for version in range(runs):
        if version:
            for v in variants:
                for i in range(rows):
                    if flips.random() < change:
                        last[v][i] = version
        yield _results(version, rows, last, seed, shift, variants)


def _results(version: int, rows: int, last: dict[str, list[int]], seed: int, shift: float,
             variants: tuple[str, ...]) -> dict[str, Any]:  # fmt: skip
    out_rows = []
    variant_results = []
    timing = random.Random(f"{seed}:t{version}")
    for n, variant in enumerate(variants):
        values: dict[str, list[float | None]] = {"rouge_l": [], "exact_match": [], "latency": []}
        for i in range(rows):
            changed_in = last[variant][i]
            rng = random.Random(((seed * 31 + n) * 1_000_003 + i) * 1009 + changed_in)
            failed = rng.random() < 0.05
            bonus = shift if changed_in else 0.0
            rouge = None if failed else round(min(1.0, rng.random() * 0.8 + bonus), 6)
            exact = None if failed else float(rng.random() < 0.3)
            latency = round(timing.uniform(0.1, 0.9), 4)
            values["rouge_l"].append(rouge)
            values["exact_match"].append(exact)
            values["latency"].append(latency)
            out_rows.append({
                "variant": variant, "row": i, "repeat": 0,
                "input": {"question": f"Question {i}: where is order {i * 7919 % 10007}?"},
                "context": [{"id": (i + k) % 50, "source": f"kb/doc{(i + k) % 7}.md",
                             "score": round(0.9 - 0.1 * k, 4)} for k in range(2)],
                "output": None if failed
                else f'{{"answer": "order {i} is on its way (v{changed_in})"}}',
                "reference": f"order {i} ships today",
                "metrics": {"rouge_l": rouge, "exact_match": exact, "latency": latency},
                "finish": "error" if failed else "stop", "guarantee": "token",
                "valid": not failed, "error": "provider timed out" if failed else None,
                "tokens": 12, "seconds": latency,
            })  # fmt: skip
        variant_results.append({
            "name": variant, "model": variant, "prompt": "qa", "rows": rows,
            "errors": sum(1 for v in values["rouge_l"] if v is None),
            "metrics": {m: _stats(v) for m, v in values.items()},
        })  # fmt: skip
    base = variant_results[0]["metrics"]["rouge_l"].get("mean") or 0.0
    gate = {"gate": "rouge_l >= 0.35", "variant": variants[0], "value": base,
            "threshold": 0.35, "passed": base >= 0.35}  # fmt: skip
    return {
        "results_version": 1,
        "project": "support-bot",
        "suites": [{
            "name": "quality", "description": "Answers grounded in the docs.",
            "status": "passed" if gate["passed"] else "failed",
            "metrics": ["rouge_l", "exact_match", "latency"],
            "variants": variant_results, "gates": [gate], "rows": out_rows,
        }],
    }  # fmt: skip


def fake_results(version: int, rows: int = 20, **kw: Any) -> dict[str, Any]:
    """Run `version`'s results (see `iter_results`)."""
    *_, last = iter_results(version + 1, rows, **kw)
    return last


def fake_lock(version: int) -> str:
    lock = Lock(
        project="support-bot",
        toolchain={"llmspec": "0.1.0"},
        prompts={"qa": {"system": f"Answer from the docs (v{version})."}},
        sections={"suites": {"quality": {"passed": True, "v": version}}},
    )
    return render_lock(lock).decode()


def record_fake_runs(root: Path, runs: int, rows: int = 20, change: float = 0.2,
                     **kw: Any) -> list[int]:  # fmt: skip
    """Record `runs` finished runs of synthetic results into `root`'s history."""
    ids = []
    for version, results in enumerate(iter_results(runs, rows, change, **kw)):
        rec = Recorder.start(
            root,
            project="support-bot",
            plan={"changes": [{"action": "update", "job": "generate.quality.base.0",
                               "kind": "generate", "reasons": ["prompt `qa` system"]}]},
            runner="inline",
            spec_files={"prompts.yaml": f"prompts:\n  qa:\n    system: v{version}\n"},
            warn=print,
        )  # fmt: skip
        rec.job("generate.quality.base.0", "generate", "done", 1.5)
        rec.finish("done", lock_text=fake_lock(version), summary={"ran": 1, "reused": 0},
                   results=results)  # fmt: skip
        ids.append(rec.id)
    return ids
