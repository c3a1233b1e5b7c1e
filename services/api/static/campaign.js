// The campaign panel: turnout by channel and by nominee, the forecast at the polls' close and the call
// list (services/read/campaign.py read_campaign and call_list; method in docs/campaign.md).

import { $, clear, el, label, num, pct, text } from "./dom.js";
import { outcomeWords } from "./outcomes.js";
import { state } from "./state.js";
import { itemOptions, orderedItems, refreshMargins } from "./tally.js";

const FORECAST_STATUS = {
  projected: "Projected at the polls' close from the voting curve so far; the interval is the 5th–95th percentile.",
  insufficient_data: "Too early to project (too little voting so far): the figures as they stand.",
  final: "The polls have closed: the figures are final.",
};
const CALL_STATUS = { absent: "No vote", broker_vote_only: "Broker's vote only" };

function percentText(value) {
  // The read side gives percentages as exact decimal text ("53.61"): shown as given, not re-rounded.
  return typeof value === "string" || typeof value === "number" ? `${value} %` : "–";
}

function interval(low, high) {
  return typeof low === "number" && typeof high === "number" ? `${num(low)} – ${num(high)}` : "–";
}

function chance(p) {
  return typeof p === "number" ? pct.format(p) : null;
}

// by_channel [{channel, present, control_numbers, discretionary, percent_of_outstanding}],
// by_nominee [{nominee (null: registered holders), present, shares, percent_of_shares}], forecast.
export function renderCampaign(campaign) {
  const byChannel = $("turnout-channel");
  clear(byChannel);
  for (const r of Array.isArray(campaign.by_channel) ? campaign.by_channel : []) {
    byChannel.append(
      el("tr", {}, el("th", { scope: "row", text: String(r.channel) }), el("td", { class: "num", text: num(r.present) }),
        el("td", { class: "num", text: num(r.control_numbers) }),
        el("td", { class: "num", text: percentText(r.percent_of_outstanding) }))
    );
  }
  const byNominee = $("turnout-nominee");
  clear(byNominee);
  for (const r of Array.isArray(campaign.by_nominee) ? campaign.by_nominee : []) {
    byNominee.append(
      el("tr", {}, el("th", { scope: "row", text: r.nominee == null ? "Registered holders" : String(r.nominee) }),
        el("td", { class: "num", text: num(r.present) }), el("td", { class: "num", text: num(r.shares) }),
        el("td", { class: "num", text: percentText(r.percent_of_shares) }))
    );
  }
  text($("campaign-as-of"), num(campaign.as_of_position));
  const forecast = campaign.forecast && typeof campaign.forecast === "object" ? campaign.forecast : null;
  state.forecast = forecast ? { items: forecast.items || {}, position: campaign.as_of_position } : null;
  renderForecast(forecast);
  refreshMargins();
}

// projections/forecast.py: turnout {projected, low, high}, quorum {required, met_probability, ...},
// items {id: {outcome, outcome_probability, margin, margin_low, margin_high}}.
function renderForecast(forecast) {
  const body = $("forecast");
  clear(body);
  if (!forecast) {
    text($("forecast-method"), "");
    body.append(el("tr", {}, el("td", { colspan: "4", text: "No forecast yet" })));
    return;
  }
  const method = typeof forecast.method === "string" ? " Method: " + forecast.method : " Method: docs/campaign.md.";
  text($("forecast-method"), (FORECAST_STATUS[forecast.status] || "") + method);
  const t = forecast.turnout || {};
  const projected = t.projected ?? t.present;
  // The read side's own percentage of outstanding when it gives one (projected_percent), as given.
  const share = typeof t.projected_percent === "string" ? `${t.projected_percent} % of outstanding` : "";
  body.append(
    el("tr", { "data-forecast": "turnout" }, el("th", { scope: "row", text: "Shares present" }),
      el("td", { class: "num", "data-label": "Projected", text: num(projected) }),
      el("td", { class: "num", "data-label": "Interval", text: interval(t.low, t.high) }),
      el("td", { "data-label": "Outlook", text: share }))
  );
  const q = forecast.quorum || {};
  const met = q.projected_met ?? q.met_now;
  const p = chance(q.met_probability);
  const words = (met ? "✔ met" : "✘ not met") + (p ? ` (${p} chance of quorum)` : "");
  body.append(
    el("tr", { "data-forecast": "quorum" }, el("th", { scope: "row", text: "Quorum (required)" }),
      el("td", { class: "num", "data-label": "Required", text: num(q.required) }),
      el("td", { class: "num", "data-label": "Interval", text: "–" }), el("td", { "data-label": "Outlook", text: words }))
  );
  for (const [itemId, f] of orderedItems(forecast.items || {})) {
    if (!f || typeof f !== "object") continue;
    const [icon, outcome] = f.outcome ? outcomeWords(f.outcome, itemOptions(itemId, f.projected), label) : ["", ""];
    const pr = chance(f.outcome_probability);
    body.append(
      el("tr", { "data-forecast": itemId }, el("th", { scope: "row", text: "Item " + itemId + " margin" }),
        el("td", { class: "num", "data-label": "Margin", text: num(f.margin) }),
        el("td", { class: "num", "data-label": "Interval", text: interval(f.margin_low, f.margin_high) }),
        el("td", { "data-label": "Outlook", text: `${icon} ${outcome}` + (pr ? ` (${pr})` : "") }))
    );
  }
}

function placeholder(id, columns, why) {
  const body = $(id);
  clear(body);
  body.append(el("tr", {}, el("td", { colspan: String(columns), text: why })));
}

// A meeting switch (why: "loading…") or a failed campaign read (why: its error): ``why`` in place of
// the turnout and the forecast shown before, and the items' margin lines lose the old forecast's.
export function clearCampaign(why) {
  state.forecast = null;
  placeholder("turnout-channel", 4, why);
  placeholder("turnout-nominee", 4, why);
  placeholder("forecast", 4, why);
  text($("campaign-as-of"), "–");
  text($("forecast-method"), "");
  refreshMargins();
}

// The same for the call list.
export function clearCallList(why) {
  placeholder("call-list", 5, why);
}

// positions [{control_number, holders, shares, kind, nominee, status}].
export function renderCallList(body) {
  const list = Array.isArray(body.positions) ? body.positions : [];
  const node = $("call-list");
  clear(node);
  if (!list.length) node.append(el("tr", {}, el("td", { colspan: "5", text: "Every position has voted" })));
  for (const p of list) {
    const holders = Array.isArray(p.holders) ? p.holders.map(String).join(" & ") : "";
    // data-label: a phone shows each row as a card, every cell with its column's name (style.css).
    node.append(
      el("tr", {}, el("td", { "data-label": "Control number", text: String(p.control_number ?? "") }),
        el("td", { "data-label": "Holders", text: holders }),
        el("td", { "data-label": "Nominee", text: p.nominee == null ? "Registered" : String(p.nominee) }),
        el("td", { class: "num", "data-label": "Shares", text: num(p.shares) }),
        el("td", { "data-label": "Status", text: CALL_STATUS[p.status] || String(p.status ?? "") }))
    );
  }
}
