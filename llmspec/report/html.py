"""The HTML report: one self-contained static page (no network, no external script) with, per
suite, the gate verdicts, bars with 95% intervals for each metric across variants, the
distribution of each metric's row values, the A/B table, and the worst rows with their input,
retrieved context, output, reference and scores.

Charts are inline SVG drawn here; the small script only filters the rows table. Every value
that comes from a dataset or a model is escaped: a model's output is text, never markup.
"""

from __future__ import annotations

import html
import json
from typing import Any

from llmspec.report import comparison_line, number, verdict, with_interval

WORST_ROWS = 12
BAR_W, BAR_H = 420, 22
HIST_BINS = 10

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2433}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px;border-top:1px solid #dde;
padding-top:16px} h3{font-size:15px;margin:16px 0 6px}
.muted{color:#667} .pass{color:#126b2b;font-weight:600} .fail{color:#b3261e;font-weight:600}
.skip{color:#8a6d00;font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px} td,th{border:1px solid #dde;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f4f6fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:18px} .chart{border:1px solid #e3e6ee;padding:8px;
border-radius:6px} pre{white-space:pre-wrap;margin:0;max-width:520px;font-size:12px}
.sig{font-weight:600}
"""

SCRIPT = """
document.querySelectorAll('input.rowfilter').forEach(function (box) {
  box.addEventListener('input', function () {
    var want = box.value.toLowerCase();
    document.querySelectorAll('#' + box.dataset.table + ' tbody tr').forEach(function (tr) {
      tr.style.display = tr.textContent.toLowerCase().indexOf(want) >= 0 ? '' : 'none';
    });
  });
});
"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render(results: Any) -> str:
    body = [f"<h1>llmspec results: {e(results.project)}</h1>"]
    if not results.suites:
        body.append("<p>No suites.</p>")
    for i, s in enumerate(results.suites):
        body += suite_html(s, i)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>llmspec results: {e(results.project)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def suite_html(s: Any, index: int) -> list[str]:
    cls = {"passed": "pass", "failed": "fail"}.get(s.status, "skip")
    out = [f'<h2 id="suite-{index}">Suite {e(s.name)}: <span class="{cls}">{e(s.status)}</span>']
    out[-1] += " <span class=muted>(from the lock)</span></h2>" if s.from_lock else "</h2>"
    if s.description:
        out.append(f"<p class=muted>{e(s.description)}</p>")
    if s.gates:
        out.append(
            "<h3>Gates</h3><table><tr><th>verdict</th><th>gate</th><th>variant</th>"
            "<th>value</th><th>threshold</th></tr>"
        )
        for g in s.gates:
            v = verdict(g.passed)
            vc = "pass" if g.passed else "skip" if g.passed is None else "fail"
            out.append(
                f'<tr><td class="{vc}">{e(v)}</td><td>{e(g.gate)}</td><td>{e(g.variant)}</td>'
                f"<td class=num>{e(number(g.value))}</td><td class=num>{e(number(g.threshold))}"
                f"</td></tr>"
            )
        out.append("</table>")
    if s.variants:
        out.append("<h3>Metrics (mean and 95% interval)</h3>")
        out.append(_metrics_table(s))
        out.append('<div class="charts">')
        info = {m.name: m for m in s.metric_info}
        for metric in s.metrics:
            out.append(_bar_chart(s, metric, info.get(metric)))
        out.append("</div>")
        if s.rows:
            out.append("<h3>Distributions of row values</h3><div class=charts>")
            for metric in s.metrics:
                out.append(_histograms(s, metric))
            out.append("</div>")
    if s.comparisons:
        out.append(_ab_table(s))
    if s.rows:
        out.append(_worst_rows(s, index))
    return out


def _metrics_table(s: Any) -> str:
    head = "".join(f"<th>{e(v.name)}</th>" for v in s.variants)
    rows = [
        f"<tr><td>{label}</td>"
        + "".join(f"<td class=num>{e(f(v))}</td>" for v in s.variants)
        + "</tr>"
        for label, f in (
            ("rows", lambda v: v.rows),
            ("errors", lambda v: v.errors),
            ("truncated", lambda v: v.truncated),
            ("closed early", lambda v: v.closed_early),
        )
    ]
    for m in s.metrics:
        cells = "".join(
            f"<td class=num>{e(with_interval(v.metrics.get(m), m))}</td>" for v in s.variants
        )
        rows.append(f"<tr><td>{e(m)}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _bar_chart(s: Any, metric: str, info: Any) -> str:
    """Horizontal bars of each variant's mean with its interval as a whisker."""
    values = [(v.name, v.metrics.get(metric)) for v in s.variants]
    highs = [
        max(m.ucb95 or m.mean or 0, m.mean or 0) for _, m in values if m and m.mean is not None
    ]
    top = max(highs) if highs else 1.0
    top = top if top > 0 else 1.0
    label_w, plot_w = 130, BAR_W - 130 - 60
    height = BAR_H * len(values) + 34
    parts = [
        f'<svg class="metric-chart" data-metric="{e(metric)}" width="{BAR_W}" height="{height}" '
        f'role="img" aria-label="{e(metric)} by variant">',
        f'<text x="0" y="14" font-size="13" font-weight="600">{e(metric)}</text>',
    ]
    if info is not None:
        better = "higher is better" if info.higher_is_better else "lower is better"
        parts.append(
            f'<text x="{BAR_W}" y="14" font-size="11" text-anchor="end" fill="#667">{better}</text>'
        )
    for i, (name, m) in enumerate(values):
        y = 24 + i * BAR_H
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{e(name)}</text>')
        if m is None or m.mean is None:
            parts.append(f'<text x="{label_w}" y="{y + 14}" font-size="12" fill="#999">-</text>')
            continue
        w = max(1.0, plot_w * max(m.mean, 0) / top)
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{BAR_H - 8}" '
            'fill="#5b7fd6"/>'
        )
        if m.lcb95 is not None and m.ucb95 is not None and m.lcb95 != m.ucb95:
            x1 = label_w + plot_w * max(m.lcb95, 0) / top
            x2 = label_w + plot_w * max(m.ucb95, 0) / top
            ym = y + BAR_H / 2
            parts.append(
                f'<line class="ci" x1="{x1:.1f}" x2="{x2:.1f}" y1="{ym:.1f}" y2="{ym:.1f}" '
                'stroke="#1d2433" stroke-width="1.5"/>'
            )
        parts.append(
            f'<text x="{BAR_W}" y="{y + 14}" font-size="12" text-anchor="end">'
            f"{e(number(m.mean, metric))}</text>"
        )
    parts.append("</svg>")
    return f'<div class="chart">{"".join(parts)}</div>'


def _histograms(s: Any, metric: str) -> str:
    """Per variant, the distribution of the metric's row values in HIST_BINS bins."""
    by_variant: dict[str, list[float]] = {v.name: [] for v in s.variants}
    for r in s.rows:
        x = r.metrics.get(metric)
        if x is not None and r.variant in by_variant:
            by_variant[r.variant].append(float(x))
    xs = [x for vs in by_variant.values() for x in vs]
    if not xs:
        return ""
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0
    w, h, gap = 200, 60, 8
    height = (h + 18) * len(by_variant) + 18
    parts = [
        f'<svg class="histogram" data-metric="{e(metric)}" width="{w}" height="{height}" '
        f'role="img" aria-label="distribution of {e(metric)}">',
        f'<text x="0" y="13" font-size="13" font-weight="600">{e(metric)}</text>',
    ]
    for j, (name, vs) in enumerate(by_variant.items()):
        top = 18 + j * (h + 18)
        counts = [0] * HIST_BINS
        for x in vs:
            counts[min(HIST_BINS - 1, int((x - lo) / span * HIST_BINS))] += 1
        peak = max(counts) or 1
        bw = (w - gap) / HIST_BINS
        parts.append(f'<text x="0" y="{top + 11}" font-size="11" fill="#667">{e(name)}</text>')
        for b, n in enumerate(counts):
            bh = (h - 16) * n / peak
            parts.append(
                f'<rect x="{b * bw:.1f}" y="{top + h - bh:.1f}" width="{bw - 1:.1f}" '
                f'height="{bh:.1f}" fill="#9bb0e6"><title>{n}</title></rect>'
            )
    parts.append("</svg>")
    return f'<div class="chart">{"".join(parts)}</div>'


def _ab_table(s: Any) -> str:
    holm = len(s.variants) > 2
    note = " Holm-corrected across pairs." if holm else ""
    rows = []
    for c in s.comparisons:
        sig = c.significant_holm if holm else c.significant
        rows.append(
            f'<tr class="{"sig" if sig else ""}"><td>{e(c.metric)}</td><td>{e(c.a)}</td>'
            f"<td>{e(c.b)}</td><td class=num>{e(comparison_line(c, holm).split(': ', 1)[1])}"
            f"</td><td>{'yes' if sig else 'no'}</td></tr>"
        )
    return (
        f"<h3>A/B: paired differences (a - b, 95% bootstrap interval).{e(note)}</h3>"
        "<table class=ab><tr><th>metric</th><th>a</th><th>b</th><th>difference</th>"
        f"<th>significant</th></tr>{''.join(rows)}</table>"
    )


def _badness(r: Any, metrics: list[str], info: dict[str, Any]) -> tuple:
    """Sort key for the worst rows: errors, then invalid outputs, then low scores."""
    score = 0.0
    for m in metrics:
        x = r.metrics.get(m)
        if x is None or m not in info:
            continue
        score += (
            (-x if info[m].higher_is_better else x)
            if info[m].kind
            not in ("latency", "ttft", "cost", "tokens_in", "tokens_out", "perplexity")
            else 0.0
        )
    return (r.error is None, r.valid is not False, -score)


def _worst_rows(s: Any, index: int) -> str:
    info = {m.name: m for m in s.metric_info}
    worst = sorted(s.rows, key=lambda r: _badness(r, s.metrics, info))[:WORST_ROWS]
    table_id = f"rows-{index}"
    head = (
        "<tr><th>variant</th><th>row</th><th>input</th><th>context</th><th>output</th>"
        "<th>reference</th><th>scores</th></tr>"
    )
    rows = []
    for r in worst:
        context = "".join(
            f"<pre>[{e(c.get('source'))} {e(c.get('score'))}] {e(c.get('text', ''))}</pre>"
            for c in (r.context or [])
        )
        scores = "<br>".join(
            f"{e(m)}: {e(number(r.metrics.get(m), m))}" for m in s.metrics if m in r.metrics
        )
        reasons = "".join(f"<br><i>{e(m)}: {e(why)}</i>" for m, why in r.reasons.items() if why)
        problem = f"<br><b>{e(r.error or r.violation)}</b>" if (r.error or r.violation) else ""
        rows.append(
            f"<tr><td>{e(r.variant)}</td><td class=num>{r.row}.{r.repeat}</td>"
            f"<td><pre>{e(json.dumps(r.input, ensure_ascii=False))}</pre></td><td>{context}</td>"
            f"<td><pre>{e(r.output)}</pre>{problem}</td><td><pre>{e(r.reference)}</pre></td>"
            f"<td>{scores}{reasons}</td></tr>"
        )
    return (
        f"<h3>Worst rows</h3><p><input class=rowfilter data-table={table_id} "
        f'placeholder="filter rows"></p><table id="{table_id}"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
