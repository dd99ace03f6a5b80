// harness live dashboard: reads /api/snapshot every second and draws it with uPlot (vendored, served by harness).
"use strict";
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#7F7F7F", "#393B79"];
const VERDICT = {pass: "#15803d", fail: "#b91c1c", invalid: "#c2410c", interrupted: "#6b7280", running: "#1d4ed8",
                 draining: "#7c3aed", finished: "#374151", stopped: "#6b7280"};
const charts = {};
const $ = (id) => document.getElementById(id);
const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "—"
  : (Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en") : Number(v).toFixed(d));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

function chart(id, names, data, opts = {}) {
  const el = $(id);
  const key = names.join("|");
  let c = charts[id];
  if (c && c.key !== key) { c.plot.destroy(); c = null; }
  if (!c) {
    const width = Math.max(300, Math.floor(el.parentElement.getBoundingClientRect().width) || 600);
    const series = [{label: opts.xLabel || "s"}].concat(names.map((n, i) => ({
      label: n, stroke: (opts.colours && opts.colours[i]) || COLOURS[i % COLOURS.length], width: opts.widths ? opts.widths[i] : 1.5,
      dash: opts.dashes ? opts.dashes[i] : undefined, spanGaps: !!opts.spanGaps, points: {show: false},
    })));
    const plot = new uPlot({width, height: opts.height || 220, series, scales: {x: {time: false}, y: opts.y || {}},
      axes: [{label: opts.xName || "seconds since start"}, {label: opts.yName || ""}], legend: {live: false}},
      data, el);
    c = charts[id] = {plot, key};
  } else {
    c.plot.setData(data);
  }
}

function col(tl, name) { return tl.cols[name] || tl.t.map(() => null); }

function drawRate(tl) {
  chart("chart-rate", ["target", "report ok/s", "report failed/s"],
    [tl.t, col(tl, "target_rate"), col(tl, "report.ok"), col(tl, "report.errors")],
    {colours: ["#111827", COLOURS[0], "#b91c1c"], dashes: [[6, 4], undefined, [2, 3]], yName: "per second",
     y: {range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)]}});
}

function operations(tl) {
  return Object.keys(tl.cols).filter((k) => k.endsWith(".ok")).map((k) => k.slice(0, -3))
    .sort((a, b) => (a !== "report") - (b !== "report") || a.localeCompare(b));
}

function drawErrors(tl, ops) {
  chart("chart-errors", ops.map((op) => op), [tl.t, ...ops.map((op) => col(tl, op + ".errors"))],
    {yName: "failed per second", y: {range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)]}});
}

function drawLatency(tl, ops) {
  const box = $("latency-charts");
  for (const op of ops) {
    const id = "chart-latency-" + op;
    if (!$(id)) {
      const div = document.createElement("div");
      div.className = "chart";
      div.innerHTML = `<h3>${esc(op)}: response time p50 / p90 / p99 (ms)</h3><div id="${id}"></div>`;
      box.appendChild(div);
    }
    chart(id, ["p50", "p90", "p99"], [tl.t, col(tl, op + ".p50"), col(tl, op + ".p90"), col(tl, op + ".p99")],
      {colours: ["#93c5fd", "#3b82f6", "#1e3a8a"], widths: [1, 1.5, 2], yName: "ms", spanGaps: true,
       y: {range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)]}});
  }
}

function drawHealth(h) {
  const ids = [...new Set(Object.keys(h.cols).map((k) => k.split(".")[0]))].sort((a, b) => +a.slice(1) - +b.slice(1));
  chart("chart-lag", ids.map((w) => "worker " + w.slice(1)), [h.t, ...ids.map((w) => col(h, w + ".loop_lag_max"))],
    {yName: "ms", spanGaps: true, y: {range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)]}});
  chart("chart-cpu", ids.map((w) => "worker " + w.slice(1)), [h.t, ...ids.map((w) => col(h, w + ".cpu"))],
    {yName: "%", spanGaps: true, y: {range: [0, 100]}});
}

function drawFanout(events) {
  $("fanout-none").style.display = events.length ? "none" : "";
  $("fanout-chart-box").style.display = events.length ? "" : "none";
  $("fanout").querySelector("tbody").innerHTML = events.map((e) => `<tr data-event="${esc(e.id)}">
    <td class="l">${esc(e.id)}</td><td>${fmt(e.at_s)}</td><td>${e.targeted}</td><td class="aware">${e.aware}</td>
    <td>${e.targeted ? fmt(100 * e.aware / e.targeted) + " %" : "—"}</td>
    <td class="l">${Object.entries(e.learned_by).map(([w, n]) => `${n} ${esc(w.replace("_", " "))}`).join(", ") || "—"}</td></tr>`).join("");
  if (!events.length) return;
  const tables = events.map((e) => {
    const pts = [[0, 0]].concat(e.curve.map(([t, n]) => [t, e.targeted ? 100 * n / e.targeted : 0]));
    return [pts.map((p) => p[0]), pts.map((p) => p[1])];
  });
  chart("chart-fanout", events.map((e) => e.id), uPlot.join(tables),
    {xName: "seconds since created", yName: "% aware", spanGaps: true, y: {range: [0, 105]}});
}

function tables(s) {
  $("thresholds").querySelector("tbody").innerHTML = (s.thresholds || []).map((t) => `<tr>
    <td class="l ${t.passed ? "pass" : (t.value === null ? "nodata" : "fail")}">${t.passed ? "holds" : (t.value === null ? "no data" : "fails")}</td>
    <td class="l"><code>${esc(t.expr)}</code></td><td>${t.value === null ? "—" : fmt(t.value, 3)}</td>
    <td>${esc(t.comparator || "")} ${fmt(t.limit, 3)}</td><td class="l">${esc(t.detail || "")}</td></tr>`).join("");
  const errs = Object.entries(s.errors || {}).sort((a, b) => b[1].count - a[1].count);
  $("errors").querySelector("tbody").innerHTML = errs.length ? errs.map(([cls, e]) =>
    `<tr data-class="${esc(cls)}"><td class="l"><b>${esc(cls)}</b></td><td>${e.count}</td><td class="ex">${esc(e.example)}</td></tr>`).join("")
    : '<tr><td class="l note" colspan="3">no errors so far</td></tr>';
  $("workers").querySelector("tbody").innerHTML = (s.workers || []).map((w) => `<tr data-worker="${w.worker}">
    <td>${w.worker}</td><td>${w.pid}</td><td class="l">${esc(w.status)}</td><td>${w.vens}</td><td>${w.ready}</td>
    <td>${w.ok.toLocaleString("en")}</td><td>${w.errors}</td><td>${fmt(w.loop_lag_ms)}</td><td>${fmt(w.loop_lag_max_ms)}</td>
    <td>${fmt(w.cpu_percent)}</td><td>${fmt(w.rss_mb)}</td><td>${w.in_flight ?? "—"}</td><td>${w.backlog ?? "—"}</td></tr>`).join("");
  const st = s.stages || {rows: []};
  $("stages-block").style.display = st.rows.length ? "" : "none";
  $("stages").querySelector("tbody").innerHTML = st.rows.map((r) =>
    `<tr class="${r.is_current ? "current" : ""}"><td>${r.stage}</td><td>${fmt(r.from_s)}</td><td>${fmt(r.to_s)}</td><td>${r.vens}</td></tr>`).join("");
  $("notes").innerHTML = (s.notes || []).map((n) => `<li>${esc(n)}</li>`).join("");
}

function header(s) {
  $("name").textContent = s.name || "harness";
  const state = s.verdict || s.phase;
  $("phase").textContent = s.verdict ? "verdict: " + s.verdict : s.phase;
  $("phase").style.background = VERDICT[state] || "#1d4ed8";
  $("sub").textContent = `${(s.vens || 0).toLocaleString("en")} VENs · a report every ${s.interval_s} s · ` +
    `${s.worker_count} workers · target ${s.target} · results ${s.run_dir}`;
  $("reports-ok").textContent = (s.reports_ok || 0).toLocaleString("en");
  $("failed").textContent = (s.reports_failed || 0).toLocaleString("en");
  const now = s.timeline.cols.target_rate ? s.timeline.cols.target_rate.at(-1) : s.target_rate_per_s;
  $("rate").textContent = `${fmt(s.rate_3s)} / ${fmt(now ?? s.target_rate_per_s)}`;
  $("vens").textContent = `${(s.vens_ready || 0).toLocaleString("en")} / ${(s.stages.target_vens || 0).toLocaleString("en")}`;
  $("elapsed").textContent = `${fmt(s.elapsed_s, 0)} s`;
  $("step").textContent = s.timeline.step_s;
  $("reasons").innerHTML = (s.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("");
}

let failures = 0;
async function tick() {
  try {
    const r = await fetch("/api/snapshot", {cache: "no-store"});
    const s = await r.json();
    failures = 0;
    if (s.timeline) {
      header(s);
      const ops = operations(s.timeline);
      drawRate(s.timeline); drawErrors(s.timeline, ops); drawLatency(s.timeline, ops); drawHealth(s.health);
      drawFanout(s.fanout || []); tables(s);
    }
    document.body.dataset.updated = String(Date.now());
    if (s.phase === "finished") return;  // the last snapshot: nothing more will change
  } catch (e) {
    if (++failures > 3) { $("phase").textContent = "run ended"; $("phase").style.background = "#6b7280"; return; }
  }
  setTimeout(tick, 1000);
}
tick();
