// The quorum and the items, exactly as the tally JSON (`tally --json`) gives them: this page computes
// no tally figure of its own. An item's margin is the read side's: the tally's own `margin` if it
// carries one, else the forecast's (projections/forecast.py margin, per the item's standard, R15).

import { $, clear, el, label, num, pct, text } from "./dom.js";
import { outcomeWords } from "./outcomes.js";
import { state } from "./state.js";

const NOT_COLUMNS = ["outcome", "not_voted", "broker_non_votes", "margin"];

function itemMeta(itemId) {
  const items = state.meeting && Array.isArray(state.meeting.items) ? state.meeting.items : [];
  return items.find((i) => i && i.id === itemId) || null;
}

// The meeting's own order (a JS object lists integer-like keys such as "2" before "1.1").
export function orderedItems(items) {
  const order = (state.meeting && Array.isArray(state.meeting.items) ? state.meeting.items : []).map((i) => i && i.id);
  const rank = (id) => (order.includes(id) ? order.indexOf(id) : order.length);
  const natural = new Intl.Collator(undefined, { numeric: true });
  return Object.entries(items).sort(([a], [b]) => rank(a) - rank(b) || natural.compare(a, b));
}

export function itemOptions(itemId, item) {
  const meta = itemMeta(itemId);
  const options = meta && Array.isArray(meta.options) ? meta.options.slice() : [];
  for (const [key, value] of Object.entries(item || {})) {
    if (typeof value === "number" && !NOT_COLUMNS.includes(key) && !options.includes(key)) options.push(key);
  }
  return options;
}

export function renderTally(tally) {
  if (!tally || tally.meeting_id !== state.meetingId) return;
  state.tally = tally;
  window.dashboardTally = tally; // for the browser test and a curious operator's console
  const q = tally.quorum || {};
  text($("quorum-present"), num(q.present));
  text($("quorum-required"), num(q.required));
  text($("outstanding"), num(tally.outstanding));
  text($("as-of"), num(tally.as_of_position));
  const ratio = q.required > 0 ? q.present / q.required : 0;
  text($("quorum-percent"), pct.format(ratio));
  const stateNode = $("quorum-state");
  stateNode.dataset.met = q.met ? "yes" : "no";
  text(stateNode, q.met ? "✔ Quorum met" : "✘ Quorum not met");
  // The bar's full width is the outstanding shares; the mark is where the quorum lies.
  const outstanding = tally.outstanding > 0 ? tally.outstanding : Math.max(q.required || 0, q.present || 0, 1);
  const bar = $("quorum-bar");
  bar.querySelector(".fill").style.width = Math.min(100, (100 * (q.present || 0)) / outstanding) + "%";
  bar.querySelector(".mark").style.left = Math.min(100, (100 * (q.required || 0)) / outstanding) + "%";
  bar.setAttribute("aria-valuenow", String(Math.round(Math.min(100, ratio * 100))));
  bar.setAttribute("aria-valuetext", `${num(q.present)} of ${num(q.required)} required (${pct.format(ratio)})`);
  renderItems(tally.items || {});
}

// A meeting switch (why: "loading…") or a failed tally read (why: its error): no figure of the tally
// shown before stays on screen, so no meeting's figures ever stand under another meeting's name.
export function clearTally(why) {
  state.tally = null;
  window.dashboardTally = null;
  for (const id of ["quorum-present", "quorum-required", "quorum-percent", "outstanding", "as-of"]) text($(id), "–");
  const stateNode = $("quorum-state");
  stateNode.dataset.met = "";
  text(stateNode, why);
  const bar = $("quorum-bar");
  bar.querySelector(".fill").style.width = "0%";
  bar.querySelector(".mark").style.left = "0%";
  bar.setAttribute("aria-valuenow", "0");
  bar.setAttribute("aria-valuetext", why);
  const list = $("items");
  clear(list);
  list.append(el("li", { class: "placeholder muted", text: why })); // renderItems drops it (no data-item)
}

function renderItems(items) {
  const list = $("items");
  const seen = new Set();
  orderedItems(items).forEach(([itemId, item], index) => {
    seen.add(itemId);
    let node = list.querySelector(`li[data-item="${CSS.escape(itemId)}"]`);
    if (!node) node = buildItem(itemId);
    // Moved only when out of place, so an unchanged list is never re-announced.
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    updateItem(node, itemId, item);
  });
  for (const node of Array.from(list.children)) if (!seen.has(node.dataset.item)) node.remove();
}

function buildItem(itemId) {
  const meta = itemMeta(itemId);
  const headingId = "item-" + Math.random().toString(36).slice(2);
  const node = el("li", { class: "item", "data-item": itemId, "aria-labelledby": headingId });
  const heading = el("h3", { id: headingId }, el("span", { class: "item-id", text: itemId }));
  if (meta && typeof meta.title === "string") heading.append(" ", el("span", { text: meta.title }));
  node.append(heading, el("p", { class: "outcome" }), el("dl", { class: "columns" }), el("p", { class: "margin muted small" }));
  return node;
}

function updateItem(node, itemId, item) {
  const options = itemOptions(itemId, item);
  const columns = options.concat(["broker_non_votes"]);
  // Each bar is its column's share of the columns shown: a proportion for the eye, not a tally figure.
  const total = columns.reduce((s, c) => s + (typeof item[c] === "number" ? item[c] : 0), 0);
  const [icon, words, tone] = outcomeWords(item.outcome, options, label);
  const outcome = node.querySelector(".outcome");
  outcome.dataset.tone = tone;
  outcome.dataset.outcome = String(item.outcome);
  text(outcome, `${icon} ${words}`);
  const dl = node.querySelector(".columns");
  for (const column of columns) {
    let row = dl.querySelector(`div[data-col="${CSS.escape(column)}"]`);
    if (!row) {
      row = el(
        "div",
        { class: "column", "data-col": column },
        el("dt", { text: label(column) }),
        el("dd", {}, el("span", { class: "bar" }, el("span", { class: "fill" })), el("span", { class: "value" }))
      );
      dl.append(row);
    }
    const value = typeof item[column] === "number" ? item[column] : 0;
    const share = total > 0 ? value / total : 0;
    row.querySelector(".fill").style.width = 100 * share + "%";
    text(row.querySelector(".value"), `${num(value)} (${pct.format(share)})`);
  }
  text(node.querySelector(".margin"), marginWords(itemId, item));
}

// The margin as the read side gives it: a sign says whether the outcome holds (+) or falls short (−).
function marginWords(itemId, item) {
  if (typeof item.margin === "number") return `Margin: ${signed(item.margin)} shares`;
  const f = state.forecast && state.forecast.items && state.forecast.items[itemId];
  if (!f || typeof f.margin !== "number") return "";
  const range = typeof f.margin_low === "number" ? `, interval ${signed(f.margin_low)} to ${signed(f.margin_high)}` : "";
  return `Margin projected at the polls' close: ${signed(f.margin)} shares (forecast as of position ${num(state.forecast.position)}${range})`;
}

function signed(value) {
  return (value > 0 ? "+" : value < 0 ? "−" : "") + num(Math.abs(value));
}

// The forecast moved (campaign.js): the items' margin lines follow it without waiting for a tally.
export function refreshMargins() {
  if (!state.tally) return;
  for (const [itemId, item] of Object.entries(state.tally.items || {})) {
    const node = $("items").querySelector(`li[data-item="${CSS.escape(itemId)}"]`);
    if (node) text(node.querySelector(".margin"), marginWords(itemId, item));
  }
}
