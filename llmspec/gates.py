"""Gates: a suite's pass/fail rules, parsed once at validate time into values.

    gate  := side OP rhs                      e.g. "rouge_l.lcb95 >= 0.35"
    side  := ref | ref "-" ref                a variant minus a variant (an A/B gate)
    ref   := [variant "."] metric ["." stat]  variant: `model` or `model/prompt`
    rhs   := NUMBER | "baseline" [("+" | "-") NUMBER]
    OP    := >= <= == != > <

A gate without a variant applies to every variant of the suite. `baseline` is the value the
lock recorded for the same variant, metric and statistic; with none recorded yet the gate is
skipped, not passed. Gates are evaluated by `evaluate`, never by `eval`.

    >>> g = parse_gate("small/grounded.rouge_l - served/grounded.rouge_l >= -0.02")
    >>> g = bind(g, metrics=("rouge_l",), variants=("small/grounded", "served/grounded"))
    >>> g.left.variant, g.left.metric, g.right.variant, g.op, g.threshold
    ('small/grounded', 'rouge_l', 'served/grounded', '>=', -0.02)
    >>> parse_gate("rouge_l >= baseline - 0.05").baseline, parse_gate("x == 1").threshold
    (True, 1.0)
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field, replace

OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
STATS = ("mean", "lcb95", "ucb95", "p50", "p95", "min", "max", "rate", "asr")
"""Statistics a gate can read of a metric; `mean` when none is named. `rate` is the share of
rows scoring 1, `asr` a red-team family's attack success rate."""

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_REF = rf"{_NAME}(?:/{_NAME})?(?:\.{_NAME}){{0,3}}"
_NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_GATE = re.compile(
    rf"^\s*(?P<left>{_REF})(?:\s*-\s*(?P<right>{_REF}))?\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    rf"(?:(?P<num>{_NUM})|(?P<baseline>baseline)(?:\s*(?P<sign>[-+])\s*(?P<offset>{_NUM}))?)\s*$"
)


class GateError(ValueError):
    """A gate that does not parse, or names a metric, variant or statistic the suite lacks;
    `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Ref:
    """One side of a gate: a metric's statistic, of one variant or (variant None) of each."""

    metric: str
    stat: str = "mean"
    variant: str | None = None
    parts: tuple[str, ...] = field(default=(), compare=False)  # as written, before binding

    def __str__(self) -> str:
        head = f"{self.variant}." if self.variant else ""
        return head + self.metric + (f".{self.stat}" if self.stat != "mean" else "")


@dataclass(frozen=True, slots=True)
class Gate:
    text: str
    left: Ref
    op: str
    right: Ref | None = None  # set for an A/B gate: left - right OP threshold
    threshold: float = 0.0
    baseline: bool = False  # rhs is the locked value (+ threshold as an offset)

    def __str__(self) -> str:
        side = f"{self.left} - {self.right}" if self.right else str(self.left)
        if self.baseline:
            off = f" {'+' if self.threshold >= 0 else '-'} {abs(self.threshold):g}"
            return f"{side} {self.op} baseline" + (off if self.threshold else "")
        return f"{side} {self.op} {self.threshold:g}"


def parse_gate(text: str) -> Gate:
    """Read a gate's syntax; names are checked against a suite by `bind`. Raises GateError."""
    m = _GATE.match(text)
    if not m:
        raise GateError(
            f"cannot read gate `{text}`",
            'write `METRIC OP NUMBER`, e.g. "rouge_l >= 0.35", "rouge_l.lcb95 >= 0.3", '
            '"a.rouge_l - b.rouge_l >= -0.02" or "rouge_l >= baseline - 0.05" '
            "(OP: >= <= == != > <)",
        )

    def ref(s: str | None) -> Ref | None:
        if s is None:
            return None
        parts = tuple(s.split("."))
        return Ref(parts[-1], parts=parts)

    if m["baseline"]:
        offset = float(m["offset"] or 0.0) * (-1 if m["sign"] == "-" else 1)
        return Gate(text, ref(m["left"]), m["op"], ref(m["right"]), offset, baseline=True)
    return Gate(text, ref(m["left"]), m["op"], ref(m["right"]), float(m["num"]))


def bind(
    gate: Gate, metrics: tuple[str, ...], variants: tuple[str, ...], suite: str | None = None
) -> Gate:
    """Resolve each side's parts into variant, metric and statistic for a suite.

    >>> bind(parse_gate("m.rouge_l.p95 < 2"), ("rouge_l",), ("m",)).left
    Ref(metric='rouge_l', stat='p95', variant='m', parts=('m', 'rouge_l', 'p95'))
    >>> r = bind(parse_gate("m.jailbreak.base64.asr < 0.1"), ("jailbreak.base64",), ("m",)).left
    >>> r.variant, r.metric, r.stat
    ('m', 'jailbreak.base64', 'asr')
    """
    who = f"suite `{suite}`" if suite else "the suite"
    left = _bind_ref(gate.left, metrics, variants, who)
    right = _bind_ref(gate.right, metrics, variants, who) if gate.right else None
    if right is not None and (left.variant is None or right.variant is None):
        raise GateError(
            f"gate `{gate.text}` compares two sides, and each must name its variant",
            f"write `VARIANT.METRIC - VARIANT.METRIC`; variants: {', '.join(variants)}",
        )
    return replace(gate, left=left, right=right)


def _bind_ref(ref: Ref, metrics: tuple[str, ...], variants: tuple[str, ...], who: str) -> Ref:
    """A metric's name may hold one dot (a red-team suite's `jailbreak.base64`): the longest
    known name wins, so `jailbreak.base64.asr` is that metric's `asr`."""
    from llmspec.errors import did_you_mean

    parts = list(ref.parts)

    def dotted(ps: list[str]) -> bool:
        return len(ps) >= 2 and ".".join(ps[:2]) in metrics

    variant = None
    named = parts[0] in variants or "/" in parts[0]
    if not named and len(parts) >= 3 and parts[0] in metrics and any("." in m for m in metrics):
        if not dotted(parts):  # FAMILY.STRATEGY.STAT with a strategy the suite lacks
            raise GateError(
                f"gate uses metric `{parts[0]}.{parts[1]}`, which {who} does not compute",
                did_you_mean(f"{parts[0]}.{parts[1]}", metrics),
            )
    if not dotted(parts) and (named or len(parts) >= 3):
        variant = parts.pop(0)
        if variant not in variants:
            raise GateError(
                f"gate names variant `{variant}`, which {who} does not run",
                did_you_mean(variant, variants),
            )
    if not parts:
        raise GateError(f"gate `{'.'.join(ref.parts)}` names no metric", "write VARIANT.METRIC")
    if dotted(parts):
        metric, rest = ".".join(parts[:2]), parts[2:]
    else:
        metric, rest = parts[0], parts[1:]
    if metric not in metrics:
        raise GateError(
            f"gate uses metric `{metric}`, which {who} does not compute",
            did_you_mean(metric, metrics) or "add it to `metrics:`",
        )
    if len(rest) > 1:
        raise GateError(
            f"gate `{'.'.join(ref.parts)}` has more parts than VARIANT.METRIC.STAT",
            f"statistics: {', '.join(STATS)}",
        )
    stat = rest[0] if rest else "mean"
    if stat not in STATS:
        raise GateError(f"unknown statistic `{stat}` in a gate", did_you_mean(stat, STATS))
    return Ref(metric, stat, variant, ref.parts)


@dataclass(frozen=True, slots=True)
class Check:
    """One gate evaluated for one variant (or one pair): its value and verdict."""

    gate: str
    variant: str | None
    value: float | None
    threshold: float | None
    passed: bool | None  # None: skipped (no baseline recorded yet, or no value)
    reason: str | None = None


Stats = dict[str, dict[str, dict[str, float | None]]]  # variant -> metric -> stat -> value


def evaluate(gate: Gate, stats: Stats, baseline: Stats | None = None) -> list[Check]:
    """Checks of one gate against a suite's statistics (and the locked baseline's).

    >>> g = bind(parse_gate("acc >= 0.5"), ("acc",), ("m",))
    >>> [(c.variant, c.value, c.passed) for c in evaluate(g, {"m": {"acc": {"mean": 0.8}}})]
    [('m', 0.8, True)]
    """

    def value(r: Ref, variant: str, table: Stats | None) -> float | None:
        return ((table or {}).get(variant, {}).get(r.metric) or {}).get(r.stat)

    pairs: list[tuple[str | None, float | None, float | None]] = []
    if gate.right is not None:
        a = value(gate.left, gate.left.variant, stats)
        b = value(gate.right, gate.right.variant, stats)
        diff = None if a is None or b is None else a - b
        base = None
        if gate.baseline and baseline is not None:
            ba = value(gate.left, gate.left.variant, baseline)
            bb = value(gate.right, gate.right.variant, baseline)
            base = None if ba is None or bb is None else ba - bb
        pairs.append((f"{gate.left.variant} - {gate.right.variant}", diff, base))
    else:
        variants = [gate.left.variant] if gate.left.variant else sorted(stats)
        for v in variants:
            pairs.append((v, value(gate.left, v, stats), value(gate.left, v, baseline)))
    out = []
    for variant, v, base in pairs:
        if gate.baseline:
            if base is None:
                out.append(Check(str(gate), variant, v, None, None, "no baseline recorded yet"))
                continue
            threshold = base + gate.threshold
        else:
            threshold = gate.threshold
        if v is None:
            out.append(Check(str(gate), variant, None, threshold, False, "no value"))
            continue
        out.append(Check(str(gate), variant, v, threshold, bool(OPS[gate.op](v, threshold))))
    return out
