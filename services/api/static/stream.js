// The live tally: GET .../tally/stream read with fetch() (EventSource cannot send an Authorization
// header). On any error it reconnects with exponential back-off (from the server's retry: value, capped,
// with jitter) and sends Last-Event-ID (an opaque id, sent back as received) so the server skips a tally
// the page already shows. A stream the server ends with `event: error` {error, code} shows that reason
// and then goes on as the code says (sse.js afterStreamError).

import { ApiError, REFUSED, Unauthorized, authHeaders } from "./api.js";
import { setConnection } from "./dom.js";
import { afterStreamError, readEvents } from "./sse.js";

const BACKOFF_MAX_MS = 30000;

class StreamEnded extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function streamEnded(data) {
  let body = null;
  try {
    body = JSON.parse(data);
  } catch (e) {
    body = null;
  }
  const message = body && typeof body.error === "string" ? body.error : String(data);
  return new StreamEnded(body && typeof body.code === "string" ? body.code : "unknown", message);
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

// Follows the stream at ``path`` until the returned controller is aborted. on.tally(tally) for each
// pushed tally; on.signIn(reason) when the token is refused (the stream then stops).
export function follow(path, on) {
  const controller = new AbortController();
  run(path, controller.signal, on);
  return controller;
}

async function run(path, signal, on) {
  let retryMs = 2000;
  let failures = 0;
  let lastEventId = null;
  while (!signal.aborted) {
    setConnection("connecting", failures ? "Reconnecting…" : "Connecting…");
    let ended = null;
    try {
      const headers = authHeaders("text/event-stream");
      if (lastEventId != null) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch(path, { headers, signal, cache: "no-store" });
      if (response.status === 401) throw new Unauthorized(REFUSED);
      if (!response.ok || !response.body) throw new ApiError(response.status, null, "stream: HTTP " + response.status);
      failures = 0; // connected: the next error starts the back-off afresh
      setConnection("live", "Live");
      await readEvents(response.body, signal, {
        retry: (ms) => (retryMs = ms),
        event: (type, data, id) => {
          if (type === "tally") {
            if (id != null) lastEventId = id;
            on.tally(JSON.parse(data));
          } else if (type === "error") ended = streamEnded(data);
        },
      });
      if (signal.aborted) return;
      throw ended || new Error("the stream ended");
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof Unauthorized) return on.signIn(err.message);
      const reason = err instanceof StreamEnded ? `the API ended the stream: ${err.message} (${err.code})` : err.message;
      const action = err instanceof StreamEnded ? afterStreamError(err.code) : "reconnect";
      if (action === "sign-in") return on.signIn(`The API refused the token: ${err.message} (${err.code}).`);
      if (action === "stop") return setConnection("down", `Stopped: ${reason}`);
      failures++;
      const wait = Math.min(BACKOFF_MAX_MS, retryMs * 2 ** Math.min(failures - 1, 4)) * (0.75 + Math.random() / 2);
      setConnection("down", `Disconnected (${reason}); retrying in ${Math.round(wait / 1000)} s`);
      await sleep(wait, signal);
    }
  }
}
