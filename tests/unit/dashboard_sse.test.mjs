// The dashboard's event-stream parser (services/api/static/sse.js), run by Node from
// tests/unit/test_api_dashboard.py. The module is loaded from a data: URL: it imports nothing, and
// Node then treats it as an ES module whatever the nearest package.json says.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const source = readFileSync(new URL("../../services/api/static/sse.js", import.meta.url), "utf8");
const { eventStreamParser, afterStreamError } = await import("data:text/javascript," + encodeURIComponent(source));

function parse(chunks) {
  const seen = [];
  const feed = eventStreamParser({ event: (type, data, id) => seen.push([type, data, id]), retry: (ms) => seen.push(["retry", ms]) });
  for (const chunk of chunks) feed(chunk);
  return seen;
}

const tests = {
  "a \\r\\n split between two chunks ends one line, not two (no early dispatch)": () => {
    const seen = parse(["event: tally\r", "\nid: 7-1\r", "\ndata: {}\r", "\n\r", "\n"]);
    assert.deepEqual(seen, [["tally", "{}", "7-1"]]);
  },
  "an event split right after a line's \\r waits for its blank line": () => {
    const seen = parse(["data: a\r", "\n"]);
    assert.deepEqual(seen, []);
  },
  "lines end in \\r\\n, \\n or \\r alike": () => {
    for (const end of ["\r\n", "\n", "\r"]) {
      assert.deepEqual(parse([`event: tally${end}id: 3-0${end}data: x${end}${end}`]), [["tally", "x", "3-0"]], JSON.stringify(end));
    }
  },
  "two lone \\r are a line end and a blank line: the event is dispatched": () => {
    assert.deepEqual(parse(["data: x\r", "\r"]), [["message", "x", null]]);
  },
  "every split point of a stream gives the same events": () => {
    const stream = ": keep-alive\r\nretry: 2000\r\nevent: tally\r\nid: 12-3\r\ndata: {\"a\":1}\r\ndata: 2\r\n\r\n" +
      "event: error\rdata: {\"code\":\"unauthenticated\"}\r\r";
    const whole = parse([stream]);
    assert.deepEqual(whole, [["retry", 2000], ["tally", '{"a":1}\n2', "12-3"], ["error", '{"code":"unauthenticated"}', "12-3"]]);
    for (let i = 1; i < stream.length; i++) assert.deepEqual(parse([stream.slice(0, i), stream.slice(i)]), whole, `split at ${i}`);
    assert.deepEqual(parse(stream.split("")), whole, "one character at a time");
  },
  "the id is opaque text, kept across events, and an id with NUL is ignored": () => {
    assert.deepEqual(parse(["id: 5-2\n\ndata: a\n\nid: x\0y\ndata: b\n\n"]), [["message", "a", "5-2"], ["message", "b", "5-2"]]);
  },
  "comments, unknown fields and a non-numeric retry are ignored; a field without a colon is empty": () => {
    assert.deepEqual(parse([": hi\nfoo: bar\nretry: 2s\ndata\n\n"]), [["message", "", null]]);
  },
  "a stream error's code decides: a refused token signs in again, a refused role stops, the rest reconnect": () => {
    assert.equal(afterStreamError("unauthenticated"), "sign-in");
    assert.equal(afterStreamError("forbidden"), "stop");
    for (const code of ["database_unavailable", "meeting_not_projected", "unknown"]) assert.equal(afterStreamError(code), "reconnect");
  },
};

let failed = 0;
for (const [name, test] of Object.entries(tests)) {
  try {
    test();
    console.log("ok", name);
  } catch (err) {
    failed++;
    console.log("FAIL", name, "\n", err.message);
  }
}
process.exit(failed ? 1 : 0);
