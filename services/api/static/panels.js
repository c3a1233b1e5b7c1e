// The ledger and submissions panels: the timeline (services/read/timeline.py) as uPlot charts and a
// table, and /v1/status (the same dict as `status --json`).

import { $, clear, compact, el, num, text } from "./dom.js";
import { state } from "./state.js";

const charts = {};
const PALETTE = ["#b3261e", "#6a3d9a", "#8a4b00", "#1f5fa8", "#00707a", "#5c5c5c"];

function showLogHead(position) {
  // The freshest of the timeline's snapshot and the status poll.
  if (typeof position !== "number") return;
  state.logHead = Math.max(state.logHead || 0, position);
  text($("log-head"), num(state.logHead));
}

// bucket_s, quorum_required, chain_head {position, hash} or null, and
// buckets [{start (RFC 3339), accepted, rejected {reason: n}, other, position, present}].
export function renderTimeline(timeline) {
  const buckets = Array.isArray(timeline.buckets) ? timeline.buckets : [];
  const bucketS = timeline.bucket_s > 0 ? timeline.bucket_s : 1;
  const reasons = Array.from(new Set(buckets.flatMap((b) => Object.keys(b.rejected || {})))).sort();
  const xs = [];
  const present = [];
  const accepted = [];
  const rejected = [];
  const byReason = reasons.map(() => []);
  const totals = {};
  for (const b of buckets) {
    const t = Date.parse(b.start);
    if (isNaN(t)) continue;
    xs.push(t / 1000);
    present.push(typeof b.present === "number" ? b.present : null);
    const rejections = b.rejected || {};
    // Per second of the bucket: a chart's rate, for the eye (the counts are in the table below).
    accepted.push((b.accepted || 0) / bucketS);
    rejected.push(Object.values(rejections).reduce((n, v) => n + v, 0) / bucketS);
    reasons.forEach((r, i) => byReason[i].push(rejections[r] || 0));
    for (const [r, n] of Object.entries(rejections)) totals[r] = (totals[r] || 0) + n;
  }
  const required = timeline.quorum_required ?? null;
  chart("present", "chart-present", [xs, present, xs.map(() => required)], [
    { label: "Shares present", stroke: "#1f5fa8", width: 2, fill: "rgba(31,95,168,0.12)" },
    { label: "Quorum required", stroke: "#8a4b00", width: 1.5, dash: [6, 4] },
  ]);
  chart("rate", "chart-rate", [xs, accepted, rejected], [
    { label: "Accepted / s", stroke: "#1d7a3a", width: 2 },
    { label: "Rejected / s", stroke: "#b3261e", width: 2, dash: [4, 3] },
  ]);
  chart(
    "rejections",
    "chart-rejections",
    [xs, ...byReason],
    reasons.map((r, i) => ({ label: r, stroke: PALETTE[i % PALETTE.length], width: 2, dash: i % 2 ? [5, 3] : undefined }))
  );
  describeChart("chart-present", "Shares present over time", xs, present);
  describeChart("chart-rate", `Accepted submissions per second (buckets of ${num(bucketS)} s)`, xs, accepted);
  $("chart-rejections").setAttribute(
    "aria-label",
    `Rejections by reason in ${num(xs.length)} buckets of ${num(bucketS)} s; totals in the table below`
  );

  const body = $("rejections");
  clear(body);
  const rows = Object.entries(totals).sort((x, y) => y[1] - x[1]);
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "2", text: "No rejection" })));
  for (const [reason, n] of rows) {
    body.append(el("tr", {}, el("th", { scope: "row", text: reason }), el("td", { class: "num", text: num(n) })));
  }
  showLogHead(timeline.as_of_position);
  const chain = timeline.chain_head; // the meeting's hash chain: its last row, or null before any
  text($("chain-position"), chain ? num(chain.position) : "–");
  text($("chain-hash"), chain && typeof chain.hash === "string" ? chain.hash : "–");
}

// A meeting switch (why: "loading…") or a failed timeline read (why: its error): the charts, the
// rejections and the meeting's chain show ``why`` instead of the figures shown before.
export function clearTimeline(why) {
  for (const [key, c] of Object.entries(charts)) {
    c.destroy();
    delete charts[key];
  }
  for (const id of ["chart-present", "chart-rate", "chart-rejections"]) {
    const node = $(id);
    clear(node);
    node.append(el("p", { class: "muted small", text: why }));
    node.setAttribute("aria-label", why);
  }
  const body = $("rejections");
  clear(body);
  body.append(el("tr", {}, el("td", { colspan: "2", text: why })));
  text($("chain-position"), why);
  text($("chain-hash"), "–");
}

function describeChart(id, what, xs, ys) {
  const last = ys.length ? ys[ys.length - 1] : null;
  $(id).setAttribute(
    "aria-label",
    xs.length ? `${what}: ${xs.length} points; latest ${num(Math.round(last * 100) / 100)}` : `${what}: no data yet`
  );
}

function chart(key, id, data, series) {
  const node = $(id);
  if (typeof uPlot === "undefined") return;
  const width = Math.max(240, node.clientWidth || node.parentElement.clientWidth || 300);
  const existing = charts[key];
  if (existing && existing.series.length === series.length + 1) {
    existing.setData(data);
    if (Math.abs(existing.width - width) > 2) existing.setSize({ width, height: existing.height });
    return;
  }
  if (existing) existing.destroy();
  clear(node);
  // uPlot is the vendored classic script (vendor/uPlot.iife.min.js), a global loaded before this module.
  charts[key] = new uPlot(
    {
      width,
      height: 200,
      series: [{}, ...series],
      axes: [{}, { size: 70, values: (u, splits) => splits.map((v) => (v == null ? "" : compact(v))) }],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    },
    data,
    node
  );
}

export function resizeCharts() {
  for (const c of Object.values(charts)) {
    const node = c.root.parentElement;
    if (node) c.setSize({ width: Math.max(240, node.clientWidth), height: c.height });
  }
}

function sum(values) {
  return Object.values(values || {}).reduce((s, n) => s + (typeof n === "number" ? n : 0), 0);
}

export function renderStatus(status) {
  const ingest = status.ingest_lag;
  // Ingest lag per partition, summed: the number of messages waiting, across the topics' partitions.
  text($("ingest-lag"), typeof ingest === "object" ? num(sum(ingest)) : num(ingest));
  text($("projector-lag"), num(status.projector_lag));
  text($("parked"), num(status.parked));
  const alarms = []
    .concat((status.stalled_partitions || []).map((p) => "stalled " + p.partition))
    .concat((status.behind_log_start || []).map((p) => "behind log start " + p.partition))
    .concat((status.beyond_end || []).map((p) => "beyond end " + p.partition))
    .concat((status.failed_meetings || []).length ? ["a meeting failed to project"] : []);
  const alarmNode = $("alarms");
  alarmNode.dataset.tone = alarms.length ? "bad" : "good";
  text(alarmNode, alarms.length ? "⚠ " + alarms.join("; ") : "✔ None");
  showLogHead(status.log_head);
}
