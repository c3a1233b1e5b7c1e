// vote-ledger live dashboard: sign in and out, the meeting picker, the stream and the panels' polling.
// The page holds no data: everything comes from the /v1 API with the bearer token the user types.
// Modules: api.js (client, token), sse.js (event-stream parser), stream.js (the live tally),
// tally.js / panels.js / campaign.js (renderers), outcomes.js (outcome codes in words).

import { ApiError, Unauthorized, api, dropToken, hasToken, meetingPath, setToken } from "./api.js";
import { clearCallList, clearCampaign, renderCallList, renderCampaign } from "./campaign.js";
import { $, clear, el, setConnection, showMessage, text } from "./dom.js";
import { clearTimeline, renderStatus, renderTimeline, resizeCharts } from "./panels.js";
import { state } from "./state.js";
import { follow } from "./stream.js";
import { clearTally, renderTally } from "./tally.js";

const MEETING_KEY = "vote-ledger.meeting";
const PANEL_MIN_INTERVAL_MS = 3000; // side panels refresh at most this often, however fast tallies come
const PANEL_POLL_MS = 15000; // and at least this often (lag and parked counts move without a new tally)
// The campaign and call list replay the meeting's log and run the forecast's Monte Carlo: about 4 s of
// the API's time for 3,000 votes (measured in the browser test), new at every checkpoint during ingest.
// A forecast for the day's report needs no second-by-second refresh: at most every 30 s.
const CAMPAIGN_MIN_INTERVAL_MS = 30000;
const LOADING = "loading…";

let stream = null; // AbortController of the running stream
let panelsAt = 0;
let jobsAt = {}; // panel name -> when it was last asked for
let panelsTimer = null;
let pollTimer = null;
const panelErrors = {}; // area -> panel name -> its last error, shown until that panel loads again

function stopStream() {
  if (stream) stream.abort();
  stream = null;
}

function signOut(message) {
  state.generation++;
  stopStream();
  clearTimeout(panelsTimer);
  clearInterval(pollTimer);
  dropToken();
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

function meetingIds(body) {
  const list = Array.isArray(body) ? body : (body && (body.meetings || body.items)) || [];
  return list.map((m) => (typeof m === "string" ? m : m.meeting_id)).filter((m) => typeof m === "string");
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

// A read's failure in words for the panel it was for: the API's one-line reason and its code.
function failure(name, err) {
  if (err instanceof ApiError && err.status === 403) return `${name}: not available to this token's role`;
  const code = err instanceof ApiError ? err.code || "HTTP " + err.status : null;
  return `${name}: ${err.message}` + (code && code !== err.message ? ` (${code})` : "");
}

// Every meeting panel to ``why`` at once: none of the previous meeting's figures stays on screen
// under the newly selected meeting while its reads are under way or when they fail.
function clearMeetingPanels(why) {
  text($("meeting-title"), why);
  clearTally(why);
  clearTimeline(why);
  clearCampaign(why);
  clearCallList(why);
}

async function selectMeeting(id) {
  // Every answer and stream event below is tagged with this generation: one that arrives after the
  // operator picked another meeting belongs to the previous one and is dropped.
  state.generation++;
  const generation = state.generation;
  const current = () => generation === state.generation;
  stopStream();
  clearTimeout(panelsTimer);
  panelsTimer = null;
  clearInterval(pollTimer);
  jobsAt = {};
  for (const where of Object.keys(panelErrors)) delete panelErrors[where];
  Object.assign(state, { meetingId: id, meeting: null, tally: null, forecast: null, logHead: 0 });
  sessionStorage.setItem(MEETING_KEY, id);
  showMessage("dashboard-message", "");
  showMessage("campaign-message", "");
  clearMeetingPanels(LOADING);
  try {
    const summary = await api(meetingPath(id, ""));
    if (!current()) return;
    state.meeting = summary;
    const parts = [summary.company, summary.title, summary.meeting_at].filter((p) => typeof p === "string");
    text($("meeting-title"), parts.length ? parts.join(" · ") : id);
  } catch (err) {
    if (!current() || handleError(err)) return;
    text($("meeting-title"), failure("Meeting", err));
  }
  try {
    const tally = await api(meetingPath(id, "/tally"));
    if (!current()) return;
    renderTally(tally);
  } catch (err) {
    if (!current() || handleError(err)) return;
    clearTally(failure("Tally", err));
  }
  stream = follow(meetingPath(id, "/tally/stream"), {
    tally: (tally) => {
      if (!current()) return; // a last event of the previous meeting's stream, read before its abort
      renderTally(tally);
      schedulePanels();
    },
    signIn: (reason) => current() && signOut(reason + " Sign in again."),
  });
  refreshPanels();
  pollTimer = setInterval(refreshPanels, PANEL_POLL_MS);
}

function schedulePanels() {
  const due = panelsAt + PANEL_MIN_INTERVAL_MS - Date.now();
  if (due <= 0) refreshPanels();
  else if (!panelsTimer) panelsTimer = setTimeout(refreshPanels, due);
}

async function refreshPanels() {
  clearTimeout(panelsTimer);
  panelsTimer = null;
  panelsAt = Date.now();
  const generation = state.generation;
  const id = state.meetingId;
  // name, path, renderer, where its error goes, its least interval, and what clears its panel on an error
  // (the status is the whole ledger's, no meeting's: its last figures stay, with the error above them).
  const jobs = [
    ["Timeline", meetingPath(id, "/timeline"), renderTimeline, "dashboard-message", 0, clearTimeline],
    ["Status", "/v1/status", renderStatus, "dashboard-message", 0, null],
    ["Campaign", meetingPath(id, "/campaign"), renderCampaign, "campaign-message", CAMPAIGN_MIN_INTERVAL_MS, clearCampaign],
    ["Call list", meetingPath(id, "/call-list?limit=20"), renderCallList, "campaign-message", CAMPAIGN_MIN_INTERVAL_MS, clearCallList],
  ].filter(([name, , , , every]) => {
    if (Date.now() - (jobsAt[name] || 0) < every) return false;
    jobsAt[name] = Date.now();
    return true;
  });
  await Promise.all(
    jobs.map(async ([name, path, render, where, , clearPanel]) => {
      try {
        const body = await api(path);
        if (generation !== state.generation) return;
        render(body);
        panelError(where, name, null);
      } catch (err) {
        if (generation !== state.generation || handleError(err)) return;
        // A failed read (e.g. 503 busy: every heavy-read slot taken) is asked again at the next refresh,
        // not after the campaign's 30 s: its panel shows the error meanwhile.
        jobsAt[name] = 0;
        const why = failure(name, err);
        if (clearPanel) clearPanel(why);
        panelError(where, name, why);
      }
    })
  );
}

function panelError(where, name, message) {
  panelErrors[where] = panelErrors[where] || {};
  if (message) panelErrors[where][name] = message;
  else delete panelErrors[where][name];
  showMessage(where, Object.values(panelErrors[where]).join(" · "));
}

// A module script runs once the document is parsed: the elements exist.
$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  setToken(token);
  showMessage("login-message", "");
  start();
});
$("sign-out").addEventListener("click", () => signOut("Signed out."));
$("meeting").addEventListener("change", (event) => selectMeeting(event.target.value));
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(resizeCharts, 200);
});
if (hasToken()) start();
else signOut("");
