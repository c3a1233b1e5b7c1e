// The text/event-stream format (HTML Living Standard, "Interpreting an event stream"), with no DOM, so
// tests/unit/dashboard_sse.test.mjs runs it in Node. Lines end in \r\n, \n or \r; a chunk may end
// between the \r and the \n of one line end, so a \r last in a chunk ends its line at once and a \n
// first in the next chunk is then skipped (not read as an empty line, which would dispatch early).

const LINE_END = /\r\n|\r|\n/g;

// A parser fed decoded text chunk by chunk; calls on.event(type, data, lastEventId) at each blank line
// that ends an event with data, and on.retry(ms) for a valid retry field. The id is opaque text.
export function eventStreamParser(on) {
  let pending = ""; // an incomplete last line, waiting for more text
  let skipLF = false; // the previous chunk ended in \r
  let data = [];
  let type = "";
  let lastEventId = null; // kept across events, as the spec's "last event ID buffer"

  function line(text) {
    if (text === "") {
      if (data.length) on.event(type || "message", data.join("\n"), lastEventId);
      data = [];
      type = "";
      return;
    }
    if (text.startsWith(":")) return; // a comment, e.g. the keep-alive
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") type = value;
    else if (field === "id" && !value.includes("\0")) lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) on.retry(parseInt(value, 10));
  }

  return function feed(chunk) {
    if (!chunk) return;
    let start = 0;
    if (skipLF) {
      skipLF = false;
      if (chunk[0] === "\n") start = 1;
    }
    const text = pending + chunk.slice(start);
    LINE_END.lastIndex = 0;
    let from = 0;
    for (let m = LINE_END.exec(text); m; m = LINE_END.exec(text)) {
      line(text.slice(from, m.index));
      from = LINE_END.lastIndex;
      if (m[0] === "\r" && from === text.length) skipLF = true;
    }
    pending = text.slice(from);
  };
}

// Reads a fetch() body to its end (or until signal aborts), decoding UTF-8 across chunk boundaries.
export async function readEvents(body, signal, on) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const feed = eventStreamParser(on);
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return; // an event without its blank line is dropped, as the spec says
    feed(decoder.decode(value, { stream: true }));
  }
}

// What the page does when the stream ends with `event: error` {error, code} (services/api/stream.py):
// a refused token asks for a token again, a refused role stops, anything else reconnects with back-off.
export function afterStreamError(code) {
  if (code === "unauthenticated") return "sign-in";
  if (code === "forbidden") return "stop";
  return "reconnect";
}
