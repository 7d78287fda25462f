"""Statistics of metric values: summaries with seeded bootstrap intervals, paired differences.

Intervals are percentile bootstrap intervals over rows with a fixed seed, so the same values
always give the same interval; `None` values (a metric that does not apply to a row) are left
out and counted apart.

    >>> s = summarize_values([1.0, 0.0, 1.0, 1.0, None])
    >>> s["n"], s["mean"], s["rate"], s["missing"]
    (4, 0.75, 0.75, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOOTSTRAP = 2000
SEED = 20240601
CONFIDENCE = 0.95


def _round(x: float | None) -> float | None:
    if x is None or math.isnan(x):
        return None
    r = round(float(x), 6)
    return 0.0 if r == 0 else r


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100].

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    s = sorted(xs)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


CHUNK = 200  # resamples drawn at once: memory stays ~CHUNK x rows, whatever the suite's size


def bootstrap(n: int, statistic: Any, resamples: int = BOOTSTRAP, seed: int = SEED) -> Any:
    """`statistic(indices)` for `resamples` resamples of row indices (with replacement), as a
    numpy array; `indices` is a (chunk, n) array. Reproducible for a seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        out.append(np.asarray(statistic(rng.integers(0, n, size=(size, n))), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def interval(samples: Any, confidence: float = CONFIDENCE) -> tuple[float, float]:
    import numpy as np

    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_mean_interval(
    xs: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP,
    seed: int = SEED,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean (reproducible for a seed)."""
    n = len(xs)
    if n == 0:
        return None, None
    if min(xs) == max(xs):
        return float(xs[0]), float(xs[0])
    import numpy as np

    arr = np.asarray(xs, dtype=np.float64)
    return interval(bootstrap(n, lambda idx: arr[idx].mean(axis=1), resamples, seed), confidence)


def corpus_summary(
    row_stats: Sequence[Sequence[float] | None],
    sentence_values: Sequence[float | None],
    score: Any,
) -> dict[str, Any]:
    """A corpus metric's summary: `mean` is `score(summed statistics)` over every row (as
    sacrebleu's corpus_score), its interval a bootstrap over rows of the same; min, max, p50,
    p95 and rate are of the per-row (sentence) values."""
    import numpy as np

    kept = [s for s in row_stats if s is not None]
    out = summarize_values(sentence_values)
    if not kept:
        return out | {"mean": None, "lcb95": None, "ucb95": None}
    mat = np.asarray(kept, dtype=np.float64)
    value = score(list(mat.sum(axis=0)))
    if len(kept) > 1:
        samples = bootstrap(len(kept), lambda idx: [score(list(mat[r].sum(axis=0))) for r in idx])
        lo, hi = interval(samples)
    else:
        lo = hi = value
    return out | {"n": len(kept), "mean": _round(value), "lcb95": _round(lo), "ucb95": _round(hi)}


def summarize_values(values: Sequence[float | None]) -> dict[str, Any]:
    """n, mean, min, max, p50, p95, rate (share of values equal to 1), lcb95/ucb95."""
    xs = [float(v) for v in values if v is not None]
    missing = len(values) - len(xs)
    if not xs:
        return {
            "n": 0,
            "missing": missing,
            "mean": None,
            "min": None,
            "max": None,
            "p50": None,
            "p95": None,
            "rate": None,
            "lcb95": None,
            "ucb95": None,
        }
    lo, hi = bootstrap_mean_interval(xs)
    return {
        "n": len(xs),
        "missing": missing,
        "mean": _round(sum(xs) / len(xs)),
        "min": _round(min(xs)),
        "max": _round(max(xs)),
        "p50": _round(percentile(xs, 50)),
        "p95": _round(percentile(xs, 95)),
        "rate": _round(sum(1 for x in xs if x == 1.0) / len(xs)),
        "lcb95": _round(lo),
        "ucb95": _round(hi),
    }


def paired_difference(
    a: Sequence[float | None], b: Sequence[float | None], resamples: int = BOOTSTRAP
) -> dict[str, Any]:
    """The mean of a - b over rows where both have a value, with a bootstrap interval and a
    two-sided bootstrap p-value; `significant` when the interval excludes 0.

    >>> d = paired_difference([1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0])
    >>> d["n"], d["mean"]
    (4, 0.5)
    """
    import numpy as np

    diffs = [
        float(x) - float(y) for x, y in zip(a, b, strict=True) if x is not None and y is not None
    ]
    if not diffs:
        return {"n": 0, "mean": None, "lcb95": None, "ucb95": None, "p": None, "significant": False}
    arr = np.asarray(diffs, dtype=np.float64)
    mean = float(arr.mean())
    if arr.min() == arr.max():
        lo = hi = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        samples = bootstrap(len(arr), lambda idx: arr[idx].mean(axis=1), resamples)
        lo, hi = interval(samples)
        p = min(1.0, 2 * min(float((samples <= 0).mean()), float((samples >= 0).mean())))
    lo_r, hi_r = _round(lo), _round(hi)
    significant = lo_r is not None and hi_r is not None and (lo_r > 0 or hi_r < 0)
    return {
        "n": len(diffs),
        "mean": _round(mean),
        "lcb95": lo_r,
        "ucb95": hi_r,
        "p": _round(p),
        "significant": significant,
    }


def holm(pvalues: Sequence[float | None], alpha: float = 1 - CONFIDENCE) -> list[bool]:
    """Holm-Bonferroni: which of several comparisons stay significant at `alpha` when tested
    together (None counts as not significant).

    >>> holm([0.01, 0.04, 0.03])
    [True, False, False]
    """
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(order)
    out = [False] * len(pvalues)
    for rank, (p, i) in enumerate(order):
        if p > alpha / (m - rank):
            break
        out[i] = True
    return out


def repeat_agreement(
    keys: Sequence[Sequence[int]], values: Sequence[float | None]
) -> dict[str, Any] | None:
    """Across repeats of the same row: the share of rows whose repeats all agree, and (for
    0/1 metrics) the share whose verdict flips. None when no row was repeated.

    >>> repeat_agreement([[0, 0], [0, 1], [1, 0], [1, 1]], [1.0, 1.0, 1.0, 0.0])
    {'rows': 2, 'agreement': 0.5, 'flip_rate': 0.5}
    """
    by_row: dict[int, list[float]] = {}
    for (row, _rep), v in zip(keys, values, strict=True):
        if v is not None:
            by_row.setdefault(row, []).append(round(float(v), 6))
    repeated = [vs for vs in by_row.values() if len(vs) > 1]
    if not repeated:
        return None
    agree = sum(1 for vs in repeated if len(set(vs)) == 1) / len(repeated)
    binary = all(set(vs) <= {0.0, 1.0} for vs in repeated)
    flips = sum(1 for vs in repeated if {0.0, 1.0} <= set(vs)) / len(repeated) if binary else None
    return {"rows": len(repeated), "agreement": _round(agree), "flip_rate": _round(flips)}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    >>> [round(x, 4) for x in wilson_interval(0, 10)]
    [0.0, 0.2775]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
