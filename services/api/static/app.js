// vote-ledger live dashboard. The page holds no data: everything comes from the /v1 API with the
// bearer token the user types (kept in sessionStorage, this tab only). Every string from the API is
// put in the page as text (textContent), never as HTML: meeting ids, titles and names are untrusted.
"use strict";

(function () {
  const TOKEN_KEY = "vote-ledger.token";
  const MEETING_KEY = "vote-ledger.meeting";
  const PANEL_MIN_INTERVAL_MS = 3000; // side panels refresh at most this often, however fast tallies come
  const PANEL_POLL_MS = 15000; // and at least this often (lag and parked counts move without a new tally)
  // The campaign and call list replay the meeting's log and run the forecast's Monte Carlo: about 4 s of
  // the API's time for 3,000 votes (measured in the browser test), new at every checkpoint during ingest.
  // A forecast for the day's report needs no second-by-second refresh: at most every 30 s.
  const CAMPAIGN_MIN_INTERVAL_MS = 30000;
  const BACKOFF_MAX_MS = 30000;

  const fmt = new Intl.NumberFormat();
  const pct = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    meetingId: null,
    meeting: null, // the meeting summary (item titles, options)
    lastEventId: null, // position of the last tally received, for Last-Event-ID
    stream: null, // AbortController of the running stream
    cache: new Map(), // url -> {etag, body}: If-None-Match makes unchanged polls cost a 304
    panelsAt: 0,
    jobsAt: {}, // panel name -> when it was last asked for
    panelsTimer: null,
    pollTimer: null,
    charts: {},
    generation: 0, // bumps on every meeting switch / sign-out so stale async work is dropped
  };

  class Unauthorized extends Error {}
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ---- helpers -------------------------------------------------------------------------------------

  function text(el, value) {
    el.textContent = value == null ? "–" : String(value);
  }

  function num(value) {
    return typeof value === "number" && isFinite(value) ? fmt.format(value) : "–";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child != null) node.append(child); // strings become text nodes
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function label(key) {
    const names = { for: "For", against: "Against", abstain: "Abstain", broker_non_votes: "Broker non-votes" };
    return names[key] || key;
  }

  function setConnection(kind, message) {
    const node = $("connection");
    node.dataset.state = kind;
    const icons = { live: "● ", connecting: "◌ ", down: "✕ ", idle: "" };
    text(node, (icons[kind] || "") + message);
  }

  function showMessage(id, message) {
    text($(id), message || "");
  }

  // ---- API -----------------------------------------------------------------------------------------

  async function api(path, options) {
    const useCache = !(options && options.noCache);
    const headers = { Authorization: "Bearer " + state.token, Accept: "application/json" };
    const cached = state.cache.get(path);
    if (useCache && cached && cached.etag) headers["If-None-Match"] = cached.etag;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 304 && cached) return cached.body;
    if (response.status === 401) throw new Unauthorized("The API refused the token (missing, unknown, revoked or expired).");
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string" ? body.error : "HTTP " + response.status;
      throw new ApiError(response.status, body && body.code, message);
    }
    const etag = response.headers.get("ETag");
    if (useCache && etag) state.cache.set(path, { etag, body });
    return body;
  }

  function meetingPath(suffix) {
    return "/v1/meetings/" + encodeURIComponent(state.meetingId) + suffix;
  }

  // ---- sign in / out -------------------------------------------------------------------------------

  function signOut(message) {
    state.generation++;
    stopStream();
    clearTimeout(state.panelsTimer);
    clearInterval(state.pollTimer);
    state.token = null;
    state.cache.clear();
    sessionStorage.removeItem(TOKEN_KEY);
    $("dashboard").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    showMessage("login-message", message || "");
    setConnection("idle", "Not connected");
    $("token").value = "";
    $("token").focus();
  }

  function handleError(err, where) {
    if (err instanceof Unauthorized) {
      signOut(err.message + " Sign in again.");
      return true;
    }
    if (where) showMessage(where, err.message);
    return false;
  }

  async function start() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("sign-out").hidden = false;
    showMessage("dashboard-message", "");
    let meetings;
    try {
      meetings = meetingIds(await api("/v1/meetings", { noCache: true }));
    } catch (err) {
      if (!handleError(err, "dashboard-message")) setConnection("down", "API unreachable");
      return;
    }
    const select = $("meeting");
    clear(select);
    for (const id of meetings) select.append(el("option", { value: id, text: id }));
    if (!meetings.length) {
      showMessage("dashboard-message", "The log holds no meeting yet.");
      return;
    }
    const remembered = sessionStorage.getItem(MEETING_KEY);
    select.value = meetings.includes(remembered) ? remembered : meetings[0];
    selectMeeting(select.value);
  }

  function meetingIds(body) {
    const list = Array.isArray(body) ? body : body && (body.meetings || body.items) || [];
    return list.map((m) => (typeof m === "string" ? m : m.meeting_id)).filter((m) => typeof m === "string");
  }

  // ---- meeting -------------------------------------------------------------------------------------

  async function selectMeeting(id) {
    state.generation++;
    const generation = state.generation;
    stopStream();
    state.meetingId = id;
    state.meeting = null;
    state.lastEventId = null;
    state.logHead = 0;
    sessionStorage.setItem(MEETING_KEY, id);
    clear($("items"));
    showMessage("dashboard-message", "");
    try {
      const summary = await api(meetingPath(""));
      if (generation !== state.generation) return;
      state.meeting = summary;
      const parts = [summary.company, summary.title, summary.meeting_at].filter((p) => typeof p === "string");
      text($("meeting-title"), parts.join(" · "));
    } catch (err) {
      if (handleError(err, "dashboard-message")) return;
    }
    try {
      renderTally(await api(meetingPath("/tally")));
    } catch (err) {
      if (handleError(err, "dashboard-message")) return;
    }
    if (generation !== state.generation) return;
    startStream(generation);
    state.jobsAt = {};
    refreshPanels();
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(refreshPanels, PANEL_POLL_MS);
  }

  // ---- tally ---------------------------------------------------------------------------------------

  function itemMeta(itemId) {
    const items = state.meeting && Array.isArray(state.meeting.items) ? state.meeting.items : [];
    return items.find((i) => i && i.id === itemId) || null;
  }

  function renderTally(tally) {
    if (!tally || tally.meeting_id !== state.meetingId) return;
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

  function itemColumns(itemId, item) {
    const meta = itemMeta(itemId);
    const options = meta && Array.isArray(meta.options) ? meta.options.slice() : [];
    for (const key of Object.keys(item)) {
      if (!["outcome", "not_voted", "broker_non_votes"].includes(key) && !options.includes(key)) options.push(key);
    }
    return { options, columns: options.concat(["broker_non_votes"]) };
  }

  function margin(options, item) {
    const ranked = options
      .filter((o) => o !== "abstain" && typeof item[o] === "number")
      .sort((a, b) => item[b] - item[a]);
    if (ranked.length < 2) return null;
    return { lead: ranked[0], next: ranked[1], by: item[ranked[0]] - item[ranked[1]] };
  }

  function outcomeWords(outcome) {
    const words = {
      elected: ["✔", "Elected", "good"],
      passed: ["✔", "Passed", "good"],
      not_elected: ["✘", "Not elected", "bad"],
      failed: ["✘", "Failed", "bad"],
      tie: ["⚖", "Tie", "warn"],
      no_quorum: ["⏸", "No quorum", "warn"],
    };
    if (words[outcome]) return words[outcome];
    return ["★", "Leading: " + String(outcome), "good"]; // a frequency item's winning option
  }

  function renderItems(items) {
    const list = $("items");
    const seen = new Set();
    orderedItems(items).forEach(([itemId, item], index) => {
      seen.add(itemId);
      let node = list.querySelector(`li[data-item="${CSS.escape(itemId)}"]`);
      if (!node) node = buildItem(itemId, item);
      // Moved only when out of place, so an unchanged list is never re-announced.
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
      updateItem(node, itemId, item);
    });
    for (const node of Array.from(list.children)) if (!seen.has(node.dataset.item)) node.remove();
  }

  // The meeting's own order (a JS object lists integer-like keys such as "2" before "1.1").
  function orderedItems(items) {
    const order = (state.meeting && Array.isArray(state.meeting.items) ? state.meeting.items : []).map((i) => i && i.id);
    const rank = (id) => (order.includes(id) ? order.indexOf(id) : order.length);
    const natural = new Intl.Collator(undefined, { numeric: true });
    return Object.entries(items).sort(([a], [b]) => rank(a) - rank(b) || natural.compare(a, b));
  }

  function buildItem(itemId, item) {
    const meta = itemMeta(itemId);
    const headingId = "item-" + Math.random().toString(36).slice(2);
    const node = el("li", { class: "item", "data-item": itemId, "aria-labelledby": headingId });
    const heading = el("h3", { id: headingId }, el("span", { class: "item-id", text: itemId }));
    if (meta && typeof meta.title === "string") heading.append(" ", el("span", { text: meta.title }));
    node.append(heading, el("p", { class: "outcome" }), el("dl", { class: "columns" }), el("p", { class: "margin muted small" }));
    return node;
  }

  function updateItem(node, itemId, item) {
    const { options, columns } = itemColumns(itemId, item);
    const total = columns.reduce((s, c) => s + (typeof item[c] === "number" ? item[c] : 0), 0);
    const [icon, words, tone] = outcomeWords(item.outcome);
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
    const m = margin(options, item);
    text(
      node.querySelector(".margin"),
      m ? `Margin: ${label(m.lead)} ahead of ${label(m.next)} by ${num(m.by)} shares` : ""
    );
  }

  // ---- the event stream ----------------------------------------------------------------------------

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // Reads GET .../tally/stream with fetch(): EventSource cannot send an Authorization header.
  // On any error it reconnects with exponential back-off (from the server's retry: value, capped,
  // with jitter) and sends Last-Event-ID so the server skips a tally the page already shows.
  async function startStream(generation) {
    const controller = new AbortController();
    state.stream = controller;
    let retryMs = 2000;
    let failures = 0;
    while (!controller.signal.aborted && generation === state.generation) {
      setConnection("connecting", failures ? "Reconnecting…" : "Connecting…");
      try {
        const headers = { Authorization: "Bearer " + state.token, Accept: "text/event-stream" };
        if (state.lastEventId != null) headers["Last-Event-ID"] = state.lastEventId;
        const response = await fetch(meetingPath("/tally/stream"), { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401) throw new Unauthorized("The API refused the token (missing, unknown, revoked or expired).");
        if (!response.ok || !response.body) throw new ApiError(response.status, null, "stream: HTTP " + response.status);
        failures = 0; // connected: the next error starts the back-off afresh
        setConnection("live", "Live");
        await readEvents(response.body, controller.signal, {
          retry: (ms) => (retryMs = ms),
          event: (type, data, id) => {
            if (id != null) state.lastEventId = id;
            if (type === "tally") {
              renderTally(JSON.parse(data));
              schedulePanels();
            }
          },
        });
        if (controller.signal.aborted) return;
        throw new Error("the stream ended");
      } catch (err) {
        if (controller.signal.aborted || generation !== state.generation) return;
        if (err instanceof Unauthorized) {
          handleError(err);
          return;
        }
        failures++;
        const wait = Math.min(BACKOFF_MAX_MS, retryMs * 2 ** Math.min(failures - 1, 4)) * (0.75 + Math.random() / 2);
        setConnection("down", `Disconnected (${err.message}); retrying in ${Math.round(wait / 1000)} s`);
        await sleep(wait, controller.signal);
      }
    }
  }

  // The text/event-stream format (HTML Living Standard, "Interpreting an event stream").
  async function readEvents(body, signal, on) {
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let data = [];
    let type = "";
    let id = null;
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop(); // an incomplete last line waits for more bytes
      // A lone \r at the end may be the first half of \r\n: keep it with the next chunk.
      for (const line of lines) {
        if (line === "") {
          if (data.length) on.event(type || "message", data.join("\n"), id);
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue; // a comment, e.g. the keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") type = val;
        else if (field === "id" && !val.includes("\0")) id = val;
        else if (field === "retry" && /^\d+$/.test(val)) on.retry(parseInt(val, 10));
      }
    }
  }

  // ---- side panels (timeline, status, campaign, call list) -----------------------------------------

  function schedulePanels() {
    const due = state.panelsAt + PANEL_MIN_INTERVAL_MS - Date.now();
    if (due <= 0) refreshPanels(false);
    else if (!state.panelsTimer) state.panelsTimer = setTimeout(() => refreshPanels(false), due);
  }

  async function refreshPanels() {
    clearTimeout(state.panelsTimer);
    state.panelsTimer = null;
    state.panelsAt = Date.now();
    const generation = state.generation;
    const jobs = [
      ["Timeline", meetingPath("/timeline"), renderTimeline, "dashboard-message", 0],
      ["Status", "/v1/status", renderStatus, "dashboard-message", 0],
      ["Campaign", meetingPath("/campaign"), renderCampaign, "campaign-message", CAMPAIGN_MIN_INTERVAL_MS],
      ["Call list", meetingPath("/call-list?limit=20"), renderCallList, "campaign-message", CAMPAIGN_MIN_INTERVAL_MS],
    ].filter(([name, , , , every]) => {
      if (Date.now() - (state.jobsAt[name] || 0) < every) return false;
      state.jobsAt[name] = Date.now();
      return true;
    });
    await Promise.all(
      jobs.map(async ([name, path, render, where]) => {
        try {
          const body = await api(path);
          if (generation !== state.generation) return;
          render(body);
          panelError(where, name, null);
        } catch (err) {
          if (generation !== state.generation || handleError(err)) return;
          const why = err.status === 403 ? "not available to this token's role" : err.message;
          panelError(where, name, `${name}: ${why}`);
        }
      })
    );
  }

  // Each panel's last error, shown together under its area until that panel loads again.
  const panelErrors = {};
  function panelError(where, name, message) {
    panelErrors[where] = panelErrors[where] || {};
    if (message) panelErrors[where][name] = message;
    else delete panelErrors[where][name];
    showMessage(where, Object.values(panelErrors[where]).join(" · "));
  }

  function showLogHead(position) {
    // The freshest of the timeline's snapshot and the status poll.
    if (typeof position !== "number") return;
    state.logHead = Math.max(state.logHead || 0, position);
    text($("log-head"), num(state.logHead));
  }

  // services/read/timeline.py: bucket_s, quorum_required, chain_head {position, hash} or null, and
  // buckets [{start (RFC 3339), accepted, rejected {reason: n}, other, position, present}].
  function renderTimeline(timeline) {
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
    const palette = ["#b3261e", "#6a3d9a", "#8a4b00", "#1f5fa8", "#00707a", "#5c5c5c"];
    chart(
      "rejections",
      "chart-rejections",
      [xs, ...byReason],
      reasons.map((r, i) => ({ label: r, stroke: palette[i % palette.length], width: 2, dash: i % 2 ? [5, 3] : undefined }))
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
    const existing = state.charts[key];
    if (existing && existing.series.length === series.length + 1) {
      existing.setData(data);
      if (Math.abs(existing.width - width) > 2) existing.setSize({ width, height: existing.height });
      return;
    }
    if (existing) existing.destroy();
    clear(node);
    state.charts[key] = new uPlot(
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

  const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  function compact(v) {
    return compactFmt.format(v);
  }

  function sum(values) {
    return Object.values(values || {}).reduce((s, n) => s + (typeof n === "number" ? n : 0), 0);
  }

  function renderStatus(status) {
    const ingest = status.ingest_lag;
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

  function percentText(value) {
    // The read side gives percentages as exact decimal text ("53.61"): shown as given, not re-rounded.
    return typeof value === "string" || typeof value === "number" ? `${value} %` : "–";
  }

  // services/read/campaign.py read_campaign: by_channel [{channel, present, control_numbers, discretionary,
  // percent_of_outstanding}], by_nominee [{nominee (null: registered holders), present, shares, ...}], forecast.
  function renderCampaign(campaign) {
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
    renderForecast(campaign.forecast);
  }

  function interval(low, high) {
    return typeof low === "number" && typeof high === "number" ? `${num(low)} – ${num(high)}` : "–";
  }

  function chance(p) {
    return typeof p === "number" ? pct.format(p) : null;
  }

  const FORECAST_STATUS = {
    projected: "Projected at the polls' close from the voting curve so far; the interval is the 5th–95th percentile.",
    insufficient_data: "Too early to project (too little voting so far): the figures as they stand.",
    final: "The polls have closed: the figures are final.",
  };

  // projections/forecast.py: turnout {projected, low, high}, quorum {required, met_probability, ...},
  // items {id: {outcome, outcome_probability, margin, margin_low, margin_high}}; method in docs/campaign.md.
  function renderForecast(forecast) {
    const body = $("forecast");
    clear(body);
    if (!forecast || typeof forecast !== "object") {
      text($("forecast-method"), "");
      body.append(el("tr", {}, el("td", { colspan: "4", text: "No forecast yet" })));
      return;
    }
    const method = typeof forecast.method === "string" ? " Method: " + forecast.method : " Method: docs/campaign.md.";
    text($("forecast-method"), (FORECAST_STATUS[forecast.status] || "") + method);
    const t = forecast.turnout || {};
    const projected = t.projected ?? t.present;
    const share = t.outstanding > 0 && typeof projected === "number" ? pct.format(projected / t.outstanding) + " of outstanding" : "";
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
      const [icon, outcome] = f.outcome ? outcomeWords(f.outcome) : ["", ""];
      const pr = chance(f.outcome_probability);
      body.append(
        el("tr", { "data-forecast": itemId }, el("th", { scope: "row", text: "Item " + itemId + " margin" }),
          el("td", { class: "num", "data-label": "Margin", text: num(f.margin) }),
          el("td", { class: "num", "data-label": "Interval", text: interval(f.margin_low, f.margin_high) }),
          el("td", { "data-label": "Outlook", text: `${icon} ${outcome}` + (pr ? ` (${pr})` : "") }))
      );
    }
  }

  const CALL_STATUS = { absent: "No vote", broker_vote_only: "Broker's vote only" };

  // services/read/campaign.py call_list: positions [{control_number, holders, shares, kind, nominee, status}].
  function renderCallList(body) {
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

  // ---- wiring --------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      showMessage("login-message", "");
      start();
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    $("meeting").addEventListener("change", (event) => selectMeeting(event.target.value));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const [key, c] of Object.entries(state.charts)) {
          const node = c.root.parentElement;
          if (node) c.setSize({ width: Math.max(240, node.clientWidth), height: c.height });
          state.charts[key] = c;
        }
      }, 200);
    });
    if (state.token) start();
    else signOut("");
  });
})();
