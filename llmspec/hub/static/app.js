// The llmspec hub: runs over time, one run in detail, two runs side by side.
// Everything comes from /api/ on this server; every value is inserted as text (never as HTML).
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d"];
const SVGNS = "http://www.w3.org/2000/svg";
const STATUS_CLASS = {
  done: "ok", passed: "ok", failed: "bad", "gates-failed": "bad",
  interrupted: "warn", running: "warn", incomplete: "warn", "not run": "muted",
};

// -- small helpers ----------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "style") Object.assign(el.style, v); // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
  return body;
}

function num(x, metric) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return typeof x === "object" ? JSON.stringify(x) : String(x);
  if (metric === "latency" || metric === "ttft") return `${x.toFixed(2)}s`;
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  return x.toFixed(3);
}

function signed(x, metric) {
  if (x === null || x === undefined) return "–";
  return (x > 0 ? "+" : x < 0 ? "−" : "±") + num(Math.abs(x), metric);
}

function interval(st, metric) {
  if (!st || st.lcb95 === null || st.lcb95 === undefined) return "";
  return `[${num(st.lcb95, metric)}, ${num(st.ucb95, metric)}]`;
}

function when(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : "–";
}

function short(d, n = 12) {
  return d ? String(d).split(":").pop().slice(0, n) : "–";
}

function badge(status) {
  return h("span", { class: `badge ${STATUS_CLASS[status] || "muted"}`, text: status || "–" });
}

function commit(run) {
  if (!run.git_commit) return "–";
  return short(run.git_commit, 8) + (run.git_dirty ? " +changes" : "");
}

function clip(text, n = 120) {
  const t = text === null || text === undefined ? "" : typeof text === "string" ? text : JSON.stringify(text);
  return t.length > n ? t.slice(0, n - 1) + "…" : t;
}

function inputText(input) {
  if (!input || typeof input !== "object") return clip(input);
  const parts = Object.entries(input).filter(([, v]) => typeof v === "string");
  return clip(parts.length ? parts.map(([, v]) => v).join(" · ") : JSON.stringify(input));
}

function table(head, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

function section(title, ...kids) {
  return h("section", {}, h("h2", { text: title }), kids);
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

function go(parts, params) {
  const q = params && [...params].length ? `?${params}` : "";
  location.hash = `#/${parts.join("/")}${q}`;
}

function showError(err) {
  const box = document.getElementById("error");
  box.hidden = false;
  box.textContent = String(err && err.message ? err.message : err);
}

// -- charts -------------------------------------------------------------------------------

function chart(entry, runIds) {
  const W = 340, H = 170, L = 46, R = 10, T = 12, B = 26;
  const variants = Object.entries(entry.variants);
  const values = variants.flatMap(([, pts]) => pts.flatMap((p) => [p.mean, p.lcb95, p.ucb95]))
    .filter((v) => typeof v === "number");
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  const nonNegative = lo >= 0, unit = lo >= 0 && hi <= 1 && entry.metric !== "latency";
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  if (nonNegative) lo = Math.max(lo, 0);
  if (unit) hi = Math.min(hi, 1);
  const x = (id) => {
    const i = runIds.indexOf(id);
    return runIds.length > 1 ? L + (i * (W - L - R)) / (runIds.length - 1) : (L + W - R) / 2;
  };
  const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
    "aria-label": `${entry.suite} ${entry.metric} over runs` });
  svg.append(s("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: L - 4, y: y(v) + 3, class: "tick", "text-anchor": "end",
      text: num(v, entry.metric) }));
  }
  const step = Math.max(1, Math.ceil(runIds.length / 8));
  runIds.forEach((id, i) => {
    if (i % step === 0 || i === runIds.length - 1) {
      svg.append(s("text", { x: x(id), y: H - 8, class: "tick", "text-anchor": "middle",
        text: `#${id}` }));
    }
  });
  variants.forEach(([name, pts], k) => {
    const color = COLORS[k % COLORS.length];
    const band = pts.filter((p) => typeof p.lcb95 === "number" && typeof p.ucb95 === "number");
    if (band.length > 1) {
      const upper = band.map((p) => `${x(p.run)},${y(p.ucb95)}`);
      const lower = band.slice().reverse().map((p) => `${x(p.run)},${y(p.lcb95)}`);
      svg.append(s("polygon", { points: upper.concat(lower).join(" "), fill: color,
        class: "band" }));
    }
    for (const p of band) {
      svg.append(s("line", { x1: x(p.run), x2: x(p.run), y1: y(p.lcb95), y2: y(p.ucb95),
        stroke: color, class: "whisker" }));
    }
    if (pts.length > 1) {
      svg.append(s("polyline", { points: pts.map((p) => `${x(p.run)},${y(p.mean)}`).join(" "),
        stroke: color, class: "line" }));
    }
    for (const p of pts) {
      const dot = s("circle", { cx: x(p.run), cy: y(p.mean), r: 3.2, fill: color, class: "dot",
        onclick: () => go(["run", p.run]) });
      dot.append(s("title", { text: `run #${p.run} · ${name}: ${num(p.mean, entry.metric)} ` +
        `${interval(p, entry.metric)} (n=${p.n ?? "–"})` }));
      svg.append(dot);
    }
  });
  const legend = h("div", { class: "legend" }, variants.map(([name], k) =>
    h("span", {}, h("i", { style: { background: COLORS[k % COLORS.length] } }), name)));
  return h("figure", { class: "chart" },
    h("figcaption", {}, h("strong", { text: entry.suite }), " · ", entry.metric), svg, legend);
}

function intervalBar(p, metric) {
  // a paired difference and its interval, against zero
  const W = 140, H = 18;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "ibar" });
  if (!p || p.lcb95 === null || p.lcb95 === undefined) return svg;
  const span = Math.max(Math.abs(p.lcb95), Math.abs(p.ucb95), Math.abs(p.mean || 0), 1e-9) * 1.15;
  const x = (v) => W / 2 + (v / span) * (W / 2 - 4);
  svg.append(s("line", { x1: W / 2, x2: W / 2, y1: 1, y2: H - 1, class: "zero" }));
  const cls = p.significant ? (p.mean > 0 ? "up" : "down") : "flat";
  svg.append(s("line", { x1: x(p.lcb95), x2: x(p.ucb95), y1: H / 2, y2: H / 2,
    class: `range ${cls}` }));
  svg.append(s("circle", { cx: x(p.mean || 0), cy: H / 2, r: 3, class: `mid ${cls}` }));
  svg.append(s("title", { text: `${signed(p.mean, metric)} [${num(p.lcb95, metric)}, ` +
    `${num(p.ucb95, metric)}], n=${p.n}` }));
  return svg;
}

// -- views --------------------------------------------------------------------------------

async function runsView(view) {
  const [runs, series, locks] = await Promise.all([api("/api/runs"), api("/api/series"),
    api("/api/locks")]);
  if (!runs.length) {
    view.append(h("p", { class: "empty", text: "No runs recorded yet: `llmspec apply` records each run." }));
    return;
  }
  const withResults = runs.filter((r) => r.results_version !== null).map((r) => r.id);
  view.append(section("Metrics over runs",
    series.length
      ? h("div", { class: "charts", id: "charts" }, series.map((e) => chart(e, withResults)))
      : h("p", { class: "muted", text: "No metrics recorded yet." })));

  const picked = new Set();
  const button = h("button", { type: "button", id: "compare-picked", disabled: true,
    text: "Compare the two selected runs",
    onclick: () => { const [a, b] = [...picked].sort((p, q) => p - q); go(["compare", a, b]); } });
  const rows = runs.slice().reverse().map((r, i, all) => {
    const prev = all[i + 1];
    const box = h("input", { type: "checkbox", "aria-label": `select run ${r.id}`,
      onchange: (ev) => {
        if (ev.target.checked) picked.add(r.id); else picked.delete(r.id);
        button.disabled = picked.size !== 2;
      } });
    const sm = r.summary || {};
    return h("tr", { "data-run": r.id },
      h("td", {}, box),
      h("td", {}, h("a", { href: `#/run/${r.id}`, text: `#${r.id}` })),
      h("td", { text: when(r.started) }),
      h("td", {}, badge(r.status)),
      h("td", { class: "mono", text: commit(r) }),
      h("td", { class: "num", text: r.seconds !== null ? `${r.seconds.toFixed(1)}s` : "–" }),
      h("td", { class: "num", text: sm.ran ?? "–" }),
      h("td", { class: "num", text: sm.reused ?? "–" }),
      h("td", { class: "mono", text: short(r.lock_digest) }),
      h("td", {}, (r.suites || []).map((st) =>
        h("span", { class: `chip ${STATUS_CLASS[st.status] || "muted"}`, text: st.name }))),
      h("td", {}, prev ? h("a", { href: `#/compare/${prev.id}/${r.id}`, text: "vs previous" }) : ""));
  });
  view.append(section("Runs",
    h("div", { class: "toolbar" }, button),
    table(["", "run", "started (UTC)", "status", "commit", "time", "ran", "reused", "lock",
      "suites", ""], rows, { id: "runs-table" })));

  const lockRows = locks.slice().reverse().map((l, i, all) => {
    const older = all[i + 1];
    const newest = l.runs[l.runs.length - 1];
    return h("tr", {},
      h("td", { class: "mono", text: short(l.digest) }),
      h("td", {}, l.runs.map((id) => h("a", { href: `#/run/${id}`, class: "runlink", text: `#${id}` }))),
      h("td", { class: "mono", text: l.commits.map((c) => short(c, 8)).join(", ") || "–" }),
      h("td", { text: when(l.first) }),
      h("td", {}, older
        ? h("a", { href: `#/compare/${older.runs[older.runs.length - 1]}/${newest}`, text: "vs previous lock" })
        : ""));
  });
  view.append(section("Lock versions",
    table(["lock", "runs", "commits", "first seen", ""], lockRows, { id: "locks-table" })));
}

function metricsTable(suite) {
  const variants = suite.variants || [];
  const names = suite.metrics && suite.metrics.length ? suite.metrics
    : [...new Set(variants.flatMap((v) => Object.keys(v.metrics || {})))];
  const rows = names.map((m) => h("tr", {}, h("th", { text: m }), variants.map((v) => {
    const st = (v.metrics || {})[m];
    return h("td", { class: "num" }, st ? [num(st.mean, m), " ",
      h("span", { class: "muted", text: interval(st, m) })] : "–");
  })));
  const head = ["metric", ...variants.map((v) => `${v.name} (${v.model} · ${v.prompt}, ${v.rows ?? "?"} rows)`)];
  return table(head, rows, { class: "metrics" });
}

function gatesList(gates) {
  if (!gates || !gates.length) return null;
  return h("ul", { class: "gates" }, gates.map((g) => h("li", {},
    h("span", { class: `badge ${g.passed ? "ok" : g.passed === false ? "bad" : "muted"}`,
      text: g.passed ? "pass" : g.passed === false ? "FAIL" : "skip" }), " ",
    h("code", { text: g.gate }), g.variant ? ` [${g.variant}]` : "",
    g.value !== null && g.value !== undefined ? ` = ${num(g.value)}` : "",
    g.reason ? h("span", { class: "muted", text: ` (${g.reason})` }) : "")));
}

const KNOWN_SUITE_KEYS = new Set(["name", "description", "status", "from_lock", "metrics",
  "variants", "gates", "rows"]);

function extras(obj, known) {
  const rest = Object.entries(obj || {}).filter(([k]) => !known.has(k));
  if (!rest.length) return null;
  return h("details", { class: "extras" }, h("summary", { text: `More (${rest.map(([k]) => k).join(", ")})` }),
    h("pre", { text: JSON.stringify(Object.fromEntries(rest), null, 2) }));
}

async function runView(view, id, params) {
  const run = await api(`/api/runs/${id}`);
  const sm = run.summary || {};
  const facts = [
    ["status", badge(run.status)], ["started", when(run.started)],
    ["finished", when(run.finished)],
    ["time", run.seconds !== null ? `${run.seconds.toFixed(1)}s` : "–"],
    ["commit", commit(run)], ["runner", run.runner || "–"],
    ["jobs", `${sm.ran ?? "–"} ran, ${sm.reused ?? "–"} reused`],
    ["lock", short(run.lock_digest)], ["llmspec", run.llmspec_version || "–"],
  ];
  view.append(h("div", { class: "title" },
    h("h1", { text: `Run #${run.id}` }),
    run.previous ? h("a", { href: `#/compare/${run.previous}/${run.id}`, class: "action",
      text: `Compare with run #${run.previous}` }) : ""));
  view.append(h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])));

  const plan = run.plan;
  if (plan) {
    const changes = plan.changes || [];
    view.append(h("details", { class: "block" },
      h("summary", { text: `Plan: ${changes.length} change${changes.length === 1 ? "" : "s"}` }),
      h("ul", { class: "plan" }, changes.map((c) => h("li", {},
        h("code", { text: `${{ create: "+", update: "~", delete: "-", restore: "*", read: "<=" }[c.action] || "?"} ${c.job}` }),
        c.cached ? " (cached)" : "",
        (c.reasons || []).length ? h("div", { class: "muted", text: c.reasons.join("; ") }) : "")))));
  }
  if (run.jobs && run.jobs.length) {
    const jobs = run.jobs.slice().sort((a, b) => (b.seconds || 0) - (a.seconds || 0));
    view.append(h("details", { class: "block" }, h("summary", { text: `Jobs: ${jobs.length}` }),
      table(["job", "status", "seconds", "error"], jobs.map((j) => h("tr", {},
        h("td", { class: "mono", text: j.job }), h("td", {}, badge(j.status)),
        h("td", { class: "num", text: j.seconds !== null ? j.seconds.toFixed(3) : "–" }),
        h("td", { text: j.error || "" }))))));
  }
  const suites = (run.results && run.results.suites) || [];
  if (!suites.length) view.append(h("p", { class: "muted", text: "This run recorded no results." }));
  for (const st of suites) {
    view.append(h("section", { class: "suite", "data-suite": st.name },
      h("h2", {}, st.name, " ", badge(st.status), st.from_lock ? h("span", { class: "muted", text: " (from the lock)" }) : ""),
      st.description ? h("p", { class: "muted", text: st.description }) : "",
      (st.variants || []).length ? metricsTable(st) : "",
      gatesList(st.gates), extras(st, KNOWN_SUITE_KEYS)));
  }
  const counts = run.row_counts || {};
  const withRows = suites.map((x) => x.name).filter((n) => counts[n]);
  if (withRows.length) view.append(await rowsExplorer(run, withRows, params, ["run", run.id]));
}

async function rowsExplorer(run, suites, params, route, fixed) {
  const wanted = params.get("suite") || (fixed && fixed.suite);
  const suite = wanted && suites.includes(wanted) ? wanted : suites[0];
  const variants = Object.keys((run.row_counts || {})[suite] || {});
  const variant = params.get("variant") || "";
  const filter = (fixed && fixed.filter) || params.get("filter") || "all";
  const page = parseInt(params.get("page") || "1", 10) || 1;
  const base = (fixed && fixed.base) || params.get("base") || "";
  const q = new URLSearchParams({ suite, page, filter });
  if (variant) q.set("variant", variant);
  if (base) q.set("base", base);
  if (fixed) q.set("with_base", "1");
  const data = await api(`/api/runs/${run.id}/rows?${q}`);
  const set = (k, v) => {
    const p = new URLSearchParams(params);
    if (v === "" || v === null) p.delete(k); else p.set(k, v);
    if (k !== "page") p.delete("page");
    go(route, p);
  };
  const select = (name, value, options) => h("select", { name, onchange: (ev) => set(name, ev.target.value) },
    options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value), text: label })));
  const controls = h("div", { class: "toolbar" },
    h("label", {}, "suite ", select("suite", suite, suites.map((x) => [x, fixed && fixed.counts ? `${x} (${fixed.counts[x]} changed)` : x]))),
    h("label", {}, "variant ", select("variant", variant, [["", "all"], ...variants.map((v) => [v, v])])),
    fixed ? "" : h("label", {}, "rows ", select("filter", filter, [["all", "all"], ["failed", "failed"],
      ["changed", `changed since ${data.base ? "#" + data.base : "(no earlier run)"}`]])),
    h("span", { class: "muted", text: `${data.total} row${data.total === 1 ? "" : "s"}` }),
    pager(data, (p) => set("page", p)));
  const metricNames = [...new Set(data.rows.flatMap((r) => Object.keys(r.metrics || {})))];
  const head = ["#", "variant", "input", fixed ? `output #${data.base}` : null, "output",
    ...metricNames, "flags"].filter((x) => x !== null);
  const body = data.rows.map((r) => h("tr", { class: r._failed ? "failed" : "", tabindex: 0,
    onclick: () => showRow(r, run, suite), onkeydown: (ev) => { if (ev.key === "Enter") showRow(r, run, suite); } },
    h("td", { class: "num", text: `${r.row ?? "?"}${r.repeat ? "." + r.repeat : ""}` }),
    h("td", { text: r.variant }),
    h("td", { class: "in", text: inputText(r.input) }),
    fixed ? h("td", { class: "out", text: clip(r.base_row ? r.base_row.output : "(new row)") }) : null,
    h("td", { class: "out", text: clip(r.output !== null && r.output !== undefined ? r.output : r.error) }),
    metricNames.map((m) => {
      const v = (r.metrics || {})[m];
      const b = r.base_row && (r.base_row.metrics || {})[m];
      const moved = fixed && typeof v === "number" && typeof b === "number" && Math.abs(v - b) > 1e-9;
      return h("td", { class: `num${moved ? " moved" : ""}`, text: moved ? `${num(b, m)} → ${num(v, m)}` : num(v, m) });
    }),
    h("td", {}, r._failed ? h("span", { class: "badge bad", text: "failed" }) : "",
      r._changed ? h("span", { class: "badge warn", text: "changed" }) : "")));
  return h("section", { id: "rows" }, h("h2", { text: fixed ? `Rows that changed (run #${run.id} against #${data.base})` : "Rows" }),
    controls, table(head, body, { class: "rows" }),
    data.rows.length ? "" : h("p", { class: "muted", text: "No rows match." }));
}

function pager(data, to) {
  return h("span", { class: "pager" },
    h("button", { type: "button", disabled: data.page <= 1, text: "‹ prev", onclick: () => to(data.page - 1) }),
    h("span", { text: ` page ${data.page} of ${data.pages} ` }),
    h("button", { type: "button", disabled: data.page >= data.pages, text: "next ›", onclick: () => to(data.page + 1) }));
}

const ROW_KNOWN = new Set(["variant", "row", "repeat", "input", "context", "output", "reference",
  "metrics", "finish", "guarantee", "valid", "error", "violation", "tokens", "seconds",
  "_index", "_failed", "_changed", "base_row"]);

function textBlock(value) {
  if (value === null || value === undefined) return h("p", { class: "muted", text: "–" });
  if (typeof value === "string") return h("pre", { text: value });
  return h("pre", { text: JSON.stringify(value, null, 2) });
}

function anyBlock(key, value) {
  // judge reasons, safety transcripts and whatever later versions add, shown generically
  if (Array.isArray(value) && value.every((t) => t && typeof t === "object" && ("role" in t || "content" in t))) {
    return h("ol", { class: "transcript" }, value.map((t) => h("li", {},
      h("strong", { text: t.role || "turn" }), ": ", typeof t.content === "string" ? t.content : JSON.stringify(t.content))));
  }
  if (value && typeof value === "object" && !Array.isArray(value) &&
      Object.values(value).every((v) => typeof v === "string")) {
    return h("dl", { class: "kv" }, Object.entries(value).map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
  }
  return textBlock(value);
}

function showRow(r, run, suite) {
  const panel = document.getElementById("detail");
  const body = document.getElementById("detail-body");
  document.getElementById("detail-title").textContent =
    `run #${run.id} · ${suite} · ${r.variant} · row ${r.row ?? "?"}${r.repeat ? " repeat " + r.repeat : ""}`;
  body.replaceChildren();
  const b = r.base_row;
  const part = (title, ...kids) => h("div", { class: "part" }, h("h3", { text: title }), kids);
  body.append(part("Input", anyBlock("input", r.input)));
  if (r.context) {
    body.append(part("Retrieved context", table(["#", "chunk", "source", "score"],
      r.context.map((c, i) => h("tr", {}, h("td", { text: i + 1 }), h("td", { class: "mono", text: c.id ?? "" }),
        h("td", { text: c.source ?? "" }), h("td", { class: "num", text: num(c.score) }))))));
  }
  if (b) {
    body.append(part("Output", h("div", { class: "pair" },
      h("div", {}, h("div", { class: "muted", text: "before" }), textBlock(b.output ?? b.error)),
      h("div", {}, h("div", { class: "muted", text: "after" }), textBlock(r.output ?? r.error)))));
  } else {
    body.append(part("Output", textBlock(r.output)));
  }
  body.append(part("Reference", textBlock(r.reference)));
  const metrics = Object.entries(r.metrics || {});
  if (metrics.length) {
    body.append(part("Metrics", table(b ? ["metric", "before", "after"] : ["metric", "value"],
      metrics.map(([m, v]) => h("tr", {}, h("td", { text: m }),
        b ? h("td", { class: "num", text: num((b.metrics || {})[m], m) }) : null,
        h("td", { class: "num", text: num(v, m) }))))));
  }
  const status = ["finish", "guarantee", "valid", "error", "violation", "tokens", "seconds"]
    .filter((k) => r[k] !== null && r[k] !== undefined);
  if (status.length) {
    body.append(part("Generation", h("dl", { class: "kv" }, status.map((k) =>
      [h("dt", { text: k }), h("dd", { class: k === "error" || k === "violation" ? "bad" : "", text: k === "seconds" ? num(r[k], "latency") : String(r[k]) })]))));
  }
  for (const [k, v] of Object.entries(r)) {
    if (!ROW_KNOWN.has(k) && v !== null && v !== undefined) body.append(part(k.replace(/_/g, " "), anyBlock(k, v)));
  }
  panel.hidden = false;
}

async function compareView(view, a, b, params) {
  const c = await api(`/api/compare?a=${a}&b=${b}`);
  view.append(h("h1", { text: `Run #${c.a.id} → run #${c.b.id}` }));
  view.append(h("div", { class: "pair heads", id: "compare-heads" }, [c.a, c.b].map((r, i) =>
    h("div", { class: "run-head", "data-run": r.id },
      h("h2", {}, h("a", { href: `#/run/${r.id}`, text: `${i ? "B" : "A"}: run #${r.id}` }), " ", badge(r.status)),
      h("dl", { class: "kv" },
        h("dt", { text: "started" }), h("dd", { text: when(r.started) }),
        h("dt", { text: "commit" }), h("dd", { class: "mono", text: commit(r) }),
        h("dt", { text: "lock" }), h("dd", { class: "mono", text: short(r.lock_digest) }))))));

  const mrows = [];
  for (const st of c.suites) {
    for (const v of st.variants) {
      for (const m of v.metrics) {
        const p = m.paired;
        const cls = p && p.significant ? (p.mean > 0 ? "up" : "down") : "";
        mrows.push(h("tr", { class: cls },
          h("td", { text: st.name }), h("td", { text: v.name }), h("th", { text: m.metric }),
          h("td", { class: "num" }, num(m.a && m.a.mean, m.metric), " ", h("span", { class: "muted", text: interval(m.a, m.metric) })),
          h("td", { class: "num" }, num(m.b && m.b.mean, m.metric), " ", h("span", { class: "muted", text: interval(m.b, m.metric) })),
          h("td", { class: "num delta", text: signed(m.delta, m.metric) }),
          h("td", { class: "num" }, p ? [`${signed(p.mean, m.metric)} `, h("span", { class: "muted", text: `[${num(p.lcb95, m.metric)}, ${num(p.ucb95, m.metric)}]` })] : "–"),
          h("td", {}, intervalBar(p, m.metric)),
          h("td", { class: "num", text: p ? p.n : "–" }),
          h("td", { text: p && p.significant ? "yes" : "" })));
      }
    }
  }
  view.append(section("Metrics", table(["suite", "variant", "metric", `A #${c.a.id}`, `B #${c.b.id}`, "Δ mean",
    "paired Δ [95% CI]", "", "pairs", "significant"], mrows, { class: "metrics", id: "compare-metrics" })));

  const grows = c.suites.flatMap((st) => st.gates.map((g) => h("tr", { class: g.flipped ? "flipped" : "" },
    h("td", { text: st.name }), h("td", {}, h("code", { text: g.gate })), h("td", { text: g.variant || "" }),
    [g.a, g.b].map((x) => h("td", {}, x ? [h("span", { class: `badge ${x.passed ? "ok" : x.passed === false ? "bad" : "muted"}`, text: x.passed ? "pass" : x.passed === false ? "FAIL" : "skip" }), ` ${num(x.value)}`] : "–")))));
  if (grows.length) view.append(section("Gates", table(["suite", "gate", "variant", `A #${c.a.id}`, `B #${c.b.id}`], grows)));

  const specParts = c.spec.length ? c.spec.map((f) => h("details", { open: true, class: "diff" },
    h("summary", {}, h("code", { text: f.file }), ` ${f.status}`),
    h("pre", {}, f.diff.map((line) => h("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "", text: line + "\n" }))),
    f.truncated ? h("p", { class: "muted", text: "(diff cut)" }) : ""))
    : [h("p", { class: "muted", text: "The spec files are the same." })];
  view.append(section("Spec changes", specParts));
  const lock = c.lock;
  view.append(section("Lock diff", lock.sections.length
    ? h("div", { id: "lock-diff" }, lock.sections.map((sec) => h("div", { class: "lock-section" }, h("h3", { text: sec.title }),
      h("pre", {}, sec.lines.map((line) => h("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("~") ? "chg" : "", text: line + "\n" }))))))
    : h("p", { class: "muted", text: lock.note || "No differences." })));

  const runB = await api(`/api/runs/${c.b.id}`);
  const suites = c.suites.filter((st) => (runB.row_counts || {})[st.name]).map((st) => st.name);
  if (suites.length) {
    const counts = Object.fromEntries(c.suites.map((st) => [st.name, st.changed_rows]));
    const first = suites.find((n) => counts[n] > 0) || suites[0];
    view.append(await rowsExplorer(runB, suites, params, ["compare", a, b],
      { filter: "changed", base: String(c.a.id), suite: first, counts }));
  }
}

// -- router -------------------------------------------------------------------------------

let generation = 0;

async function render() {
  const mine = ++generation;
  const { parts, params } = parseHash();
  const view = h("main", { id: "view" });
  document.getElementById("error").hidden = true;
  try {
    if (parts[0] === "run" && parts[1]) await runView(view, parseInt(parts[1], 10), params);
    else if (parts[0] === "compare" && parts[2]) await compareView(view, parseInt(parts[1], 10), parseInt(parts[2], 10), params);
    else await runsView(view);
  } catch (err) {
    showError(err);
  }
  if (mine !== generation) return; // a newer navigation won
  document.getElementById("view").replaceWith(view);
  document.body.dataset.ready = location.hash || "#/";
}

async function start() {
  document.getElementById("detail-close").addEventListener("click", () => { document.getElementById("detail").hidden = true; });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") document.getElementById("detail").hidden = true; });
  try {
    const info = await api("/api/info");
    document.getElementById("project").textContent = info.project || "";
    document.title = info.project ? `${info.project} · llmspec hub` : "llmspec hub";
  } catch (err) {
    showError(err);
  }
  window.addEventListener("hashchange", () => { document.getElementById("detail").hidden = true; render(); });
  await render();
}

start();
