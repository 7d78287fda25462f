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

    rng = np.random.default_rng(seed)
    arr = np.asarray(xs, dtype=np.float64)
    means = arr[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def summarize_values(values: Sequence[float | None]) -> dict[str, Any]:
    """n, mean, min, max, p50, p95, rate (share of values equal to 1), lcb95/ucb95."""
    xs = [float(v) for v in values if v is not None]
    missing = len(values) - len(xs)
    if not xs:
        return {"n": 0, "missing": missing, "mean": None, "min": None, "max": None,
                "p50": None, "p95": None, "rate": None, "lcb95": None, "ucb95": None}  # fmt: skip
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
    """The mean of a - b over rows where both have a value, with a bootstrap interval;
    `significant` when the interval excludes 0."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    diffs = [float(x) - float(y) for x, y in pairs]
    if not diffs:
        return {"n": 0, "mean": None, "lcb95": None, "ucb95": None, "significant": False}
    lo, hi = bootstrap_mean_interval(diffs, resamples=resamples)
    lo_r, hi_r = _round(lo), _round(hi)
    significant = lo_r is not None and hi_r is not None and (lo_r > 0 or hi_r < 0)
    return {
        "n": len(diffs),
        "mean": _round(sum(diffs) / len(diffs)),
        "lcb95": lo_r,
        "ucb95": hi_r,
        "significant": significant,
    }


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
