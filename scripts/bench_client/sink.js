// A websocket sink for scripts/bench_stream.py that is not the bottleneck (Node + the `ws` package).
//
// Commands come on stdin, one JSON object a line; results go to stdout, one JSON object a line:
//   {"op": "open", "id": "a", "url": "ws://...", "kind": "json"|"page",
//    "latency_from": <epoch s>, "reconnect_after": <events>, "timeout": <s>}
//   → {"id": "a", "event": "open", "at": <epoch s>}      once connected
//   → {"id": "a", "event": "done", ...what it saw}        when the stream ended
// "json": every message is parsed (JSON.parse) and its events counted (an array of events, or one
// event a message as websocketd sends), seq checked gapless, log events timed; "page": messages and
// bytes counted. "reconnect_after": drop the connection after that many events and reconnect with
// ?after=<last seq> (the stream must still be complete and gapless across it).
"use strict";
const WebSocket = require("ws");
const readline = require("readline");

const now = () => (performance.timeOrigin + performance.now()) / 1000; // epoch seconds, sub-ms

function pct(sorted, p) {
  if (!sorted.length) return null;
  const k = (sorted.length - 1) * p / 100, lo = Math.floor(k), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo);
}

function out(obj) { process.stdout.write(JSON.stringify(obj) + "\n"); }

function open(cmd) {
  const s = {
    id: cmd.id, kind: cmd.kind || "json", events: 0, logs: 0, messages: 0, bytes: 0,
    gapless: true, next_seq: 0, last_seq: -1, close_code: null, ended: "", first_log: null,
    last_log: null, first_message: null, end: null, latencies: [], reconnects: 0, errors: [],
  };
  const latencyFrom = cmd.latency_from == null ? null : cmd.latency_from;
  let timer = null;

  function finish(how) {
    if (s.end !== null) return;
    s.end = now();
    s.ended = s.ended || how;
    if (timer) clearTimeout(timer);
    const lat = s.latencies.sort((a, b) => a - b);
    const result = Object.assign({}, s, {
      event: "done", latencies: undefined, latency_n: lat.length, latency_p50: pct(lat, 50),
      latency_p99: pct(lat, 99), latency_max: lat.length ? lat[lat.length - 1] : null,
    });
    if (cmd.keep_latencies) result.latency_values = lat;
    out(result);
  }

  function connect(url, first) {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    ws.on("open", () => { if (first) out({ id: s.id, event: "open", at: now() }); });
    ws.on("message", (data, isBinary) => {
      const arrived = now();
      s.messages++;
      s.bytes += data.length;
      if (s.first_message === null) s.first_message = arrived;
      if (s.kind !== "json") return;
      let parsed;
      try { parsed = JSON.parse(data.toString()); } catch (e) { s.errors.push("bad JSON"); return; }
      const batch = Array.isArray(parsed) ? parsed : [parsed];
      for (let i = 0; i < batch.length; i++) {
        const ev = batch[i];
        s.events++;
        if (cmd.check_seq !== false) {
          if (ev.seq !== s.next_seq) s.gapless = false;
          s.next_seq = (typeof ev.seq === "number" ? ev.seq : s.next_seq) + 1;
          s.last_seq = s.next_seq - 1;
        }
        if (ev.kind === "log") {
          s.logs++;
          if (s.first_log === null) s.first_log = arrived;
          s.last_log = arrived;
          if (latencyFrom !== null && ev.t >= latencyFrom) s.latencies.push(arrived - ev.t);
        }
      }
      if (cmd.reconnect_after && s.reconnects === 0 && s.events >= cmd.reconnect_after) {
        s.reconnects++;
        ws.removeAllListeners("close");
        ws.terminate(); // no close handshake: as a browser tab that lost its network would
        const base = cmd.url.split("?")[0];
        connect(base + "?after=" + s.last_seq, false);
      }
    });
    ws.on("close", (code) => { s.close_code = code; s.ended = code ? "close" : "lost"; finish("close"); });
    ws.on("error", (e) => { s.errors.push(String(e.message || e)); });
  }

  timer = setTimeout(() => { s.ended = "timeout"; finish("timeout"); }, (cmd.timeout || 120) * 1000);
  connect(cmd.url, true);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.op === "open") open(cmd);
  else if (cmd.op === "exit") process.exit(0);
});
rl.on("close", () => process.exit(0));
out({ event: "ready", at: now(), node: process.version });
