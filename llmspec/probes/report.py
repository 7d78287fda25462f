"""A red-team suite's part of the results: per variant the attack success rate of each family
and strategy (with n, attempts, a Wilson interval and the baseline without a strategy), each
family's OWASP category, every transcript as a row, and the worst ones (successful attacks, a
few per family) for the Markdown and HTML reports."""

from __future__ import annotations

from typing import Any

WORST_PER_VARIANT = 12


def _detect_jobs(graph: Any, gate_job: Any) -> dict[str, Any]:
    return {r.removeprefix("summary."): graph.jobs[j] for r, j in gate_job.deps.items()}


def _info(first: Any) -> tuple[list[Any], list[Any], list[str]]:
    from llmspec.probes import FAMILIES, OVERALL, OWASP
    from llmspec.results import FamilyInfo, MetricInfo

    families = first.inputs["families"] if first is not None else []
    info = [
        MetricInfo(
            name=f,
            kind="redteam",
            higher_is_better=False,
            description=f"attack success rate: {FAMILIES[f].description}",
        )
        for f in families
    ]
    info.append(
        MetricInfo(
            name=OVERALL,
            kind="redteam",
            higher_is_better=False,
            description="attack success rate over every family",
        )
    )
    fams = [
        FamilyInfo(
            name=f,
            owasp=FAMILIES[f].owasp,
            owasp_name=OWASP.get(FAMILIES[f].owasp or ""),
            description=FAMILIES[f].description,
            detector=FAMILIES[f].detector,
        )
        for f in families
    ]
    return info, fams, families


def _cells(job: Any, stats: dict[str, Any]) -> list[Any]:
    from llmspec.probes import PLAIN
    from llmspec.results import AttackCell

    cells = []
    for family in job.inputs["families"]:
        base = (stats.get(f"{family}.{PLAIN}") or {}).get("asr")
        for strategy in job.inputs["strategies"][family]:
            st = stats.get(f"{family}.{strategy}") or {}
            cells.append(
                AttackCell(
                    family=family,
                    strategy=strategy,
                    **{k: st.get(k) for k in ("successes", "probes", "attempts", "asr")},
                    n=st.get("n") or 0,
                    missing=st.get("missing") or 0,
                    lcb95=st.get("lcb95"),
                    ucb95=st.get("ucb95"),
                    baseline=None if strategy == PLAIN else base,
                )
            )
    return cells


def redteam_parts(graph: Any, store: Any, gate_job: Any) -> tuple:
    """(metric info, variants, rows, the red-team result, complete) from the store."""
    from llmspec.probes import PROBE_SET_VERSION, STRATEGY_NAMES
    from llmspec.results import RedteamResult, RedteamVariant, VariantResult, metric_result
    from llmspec.results import variant_names as names_of

    jobs = _detect_jobs(graph, gate_job)
    first = next(iter(jobs.values()), None)
    info, families, _ = _info(first)
    variants, rows, rt_variants, worst = [], [], [], []
    complete = True
    for variant, job in jobs.items():
        model, prompt = names_of(graph, job)
        found = store.get(job.key)
        if found is None:
            complete = False
            continue
        out = found.output
        variants.append(
            VariantResult(
                name=variant,
                model=model,
                prompt=prompt,
                rows=out["rows"],
                errors=out["errors"],
                truncated=out["truncated"],
                closed_early=out.get("closed_early", 0),
                causes=out.get("causes", {}),
                metrics={m: metric_result(st) for m, st in out["stats"].items()},
            )
        )
        rt_variants.append(
            RedteamVariant(
                name=variant,
                cells=_cells(job, out["stats"]),
                planted=out["planted"]["rows"],
                planted_retrieved=out["planted"]["retrieved"],
            )
        )
        shown, transcripts = _rows(graph, store, job, variant, out["verdicts"])
        rows += shown
        worst += _worst(transcripts, job.inputs["families"])
    strategies = [s for s in STRATEGY_NAMES if first is not None and _declared(first, s)]
    result = RedteamResult(
        probe_set=PROBE_SET_VERSION,
        families=families,
        strategies=strategies,
        variants=rt_variants,
        worst=worst,
    )
    return info, variants, rows, result, complete


def _declared(job: Any, strategy: str) -> bool:
    return any(strategy in ss for ss in job.inputs["strategies"].values())


def _rows(graph: Any, store: Any, job: Any, variant: str, verdicts: list[dict]) -> tuple:
    """Every attempt as a results row, and the transcripts of the successful ones."""
    from llmspec.results import RowResult, Transcript

    out, transcripts = [], []
    verdict = iter(verdicts)
    for family in job.inputs["families"]:
        shard = store.get(graph.jobs[job.deps[f"shard.{family}"]].key)
        if shard is None:
            return out, transcripts
        rows = shard.output["rows"]
        by_pair = {
            (r["probe"]["pair"]["id"], r["repeat"], r["probe"]["pair"]["side"]): r
            for r in rows
            if family == "bias"
        }
        for r in rows:
            v = next(verdict)
            probe = r["probe"]
            doc = (probe.get("document") or {}).get("text")
            value = None if v["success"] is None else float(v["success"])
            out.append(
                RowResult(
                    variant=variant,
                    row=v["key"][0],
                    repeat=v["key"][1],
                    input={
                        "probe": probe["id"],
                        "family": family,
                        "strategy": probe["strategy"],
                        "text": probe["text"],
                        **({"document": doc} if doc else {}),
                    },
                    context=r.get("context"),
                    output=r.get("output"),
                    metrics={family: value},
                    reasons={family: v["evidence"]},
                    finish=r.get("finish"),
                    guarantee=r.get("guarantee"),
                    valid=r.get("valid"),
                    error=r.get("error"),
                    tokens=r.get("tokens"),
                )
            )
            if v["success"]:
                other = None
                if family == "bias":
                    other = by_pair.get((probe["pair"]["id"], r["repeat"], 1))
                transcripts.append(
                    Transcript(
                        variant=variant,
                        family=family,
                        strategy=probe["strategy"],
                        probe=probe["id"],
                        attempt=r["repeat"],
                        input=probe["text"],
                        document=doc,
                        retrieved=r.get("planted_retrieved"),
                        output=r.get("output"),
                        evidence=v["evidence"],
                        paired_input=other["probe"]["text"] if other else None,
                        paired_output=other.get("output") if other else None,
                    )
                )
    return out, transcripts


def _worst(transcripts: list[Any], families: list[str]) -> list[Any]:
    """Up to WORST_PER_VARIANT successful attacks, taken in turn from each family so that one
    leaky family does not hide the others."""
    queues = {f: [t for t in transcripts if t.family == f] for f in families}
    out: list[Any] = []
    while len(out) < WORST_PER_VARIANT and any(queues.values()):
        for f in families:
            if queues[f] and len(out) < WORST_PER_VARIANT:
                out.append(queues[f].pop(0))
    return out


def redteam_from_lock(graph: Any, gate_job: Any, result: Any) -> Any:
    """The red-team table from what the lock recorded (rates and intervals, no transcripts)."""
    from llmspec.probes import PROBE_SET_VERSION, STRATEGY_NAMES
    from llmspec.results import RedteamResult, RedteamVariant

    jobs = _detect_jobs(graph, gate_job)
    first = next(iter(jobs.values()), None)
    _, families, _ = _info(first)
    variants = []
    for v in result.variants:
        stats = {
            m: {
                "asr": r.mean,
                "n": r.n,
                "lcb95": r.lcb95,
                "ucb95": r.ucb95,
                # the lock keeps the rate and n: successes are their product
                "successes": None if r.mean is None else round(r.mean * r.n),
            }
            for m, r in v.metrics.items()
        }
        variants.append(RedteamVariant(name=v.name, cells=_cells(jobs[v.name], stats)))
    strategies = [s for s in STRATEGY_NAMES if first is not None and _declared(first, s)]
    return RedteamResult(
        probe_set=PROBE_SET_VERSION, families=families, strategies=strategies, variants=variants
    )
