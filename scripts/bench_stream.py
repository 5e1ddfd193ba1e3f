#!/usr/bin/env python3
"""Benchmarks of the server's event stream, each beside a baseline measured in the same run.

    .venv/bin/python scripts/bench_stream.py            # full measurement (several minutes)
    .venv/bin/python scripts/bench_stream.py --quick    # fewer repetitions, smaller counts (~1 min)
    .venv/bin/python scripts/bench_stream.py --only start,flood

What is measured (targets from the issue; the baseline is websocketd 0.4.1 streaming the *same*
program, one message per line, started with the same interpreter and environment):

1. start    POST /runs → first ``log`` event at a JSON-websocket client (POST, then connect at
            once), against websocketd's connect → first line. p50 <= 1.4x websocketd's p50, and
            p99 <= 100 ms.
2. flood    a lesson writing N JSON lines as fast as it can (200k in the full run): every event
            reaches the JSON websocket client, gapless, and ``events.jsonl`` holds every line;
            lines/s (start → last log event at the client) >= 1.3x websocketd's. The client is
            Node's ``ws`` (scripts/bench_client/sink.js, ws@8 installed with npm into a folder
            under the system's temp dir when missing), checked first: it sinks a pre-recorded
            flood from a trivial sender (a socket that answers the handshake and writes frames
            built beforehand) in both shapes, one line a message and arrays, and the run says
            whether that is >= 3x every rate it reports. Beside it, the floor: the same program
            into a bare pipe that a reader empties.
3. latency  at 1,000 events/s, receive time minus the event's ``t``: p99 <= 5 ms (Node client). The
            first 0.25 s after the socket is connected is skipped (for the server, that is history).
3b. classroom  one run at 1,000 events/s watched by 10 JSON and 20 page websockets (Node clients):
            every JSON viewer gets every event in order, delivery latency p99 <= 50 ms, server CPU
            (gunicorn master + worker, over the run) <= one core. Baselines in the same run: one
            JSON viewer alone; then the 30 again with a stalled JSON viewer, a stalled page viewer
            (4 KB receive buffers, never read) and a JSON viewer that drops its connection halfway
            and comes back with ``?after=``: it must get every event, the others' p99 stay <= 50 ms.
5. memory   a fresh server's RSS (gunicorn master + worker, lessons excluded; psutil, sampled every
            100 ms) through a 1M-line flood with a JSON and a page viewer reading: < 150 MB.
            Baseline: the same server's RSS at rest before the flood. Then that finished run's
            NDJSON download (GET /api/runs/<id>/events, with curl): MB/s after the first byte
            against reading the file from the disk itself (``dd iflag=direct``), and the server's
            RSS while it streams (it must not hold the run).
6. fanout   8 concurrent floods, 4 viewers each (2 JSON + 2 page websockets): every JSON viewer
            gets every event, gapless; then again with one stalled viewer (connects with a 4 KB
            receive buffer, never reads). Others' median completion time with the stall must stay
            within 1.2x of the time without it. Whether the stalled viewer is cut loose is
            reported from the server side of its TCP connection (psutil state, ``ss`` Send-Q):
            ESTABLISHED with a full Send-Q = a server thread still blocked sending to it.
            The verdict compares when the last of the others is done (median over rounds); the
            median viewer, each viewer's delay after its lesson ended, and how long POST /runs
            took under the load are printed beside it.
7. ends     100 short runs in a row → 100 JSON streams closed with a normal close frame (1000),
            none hanging (10 s timeout each).
8. sampler  a CPU-bound lesson run directly in JSON mode with THREADLAB_SAMPLE_INTERVAL=0.1 and =0,
            in rounds with rotating order: median of the per-round time ratios <= 1.05. A third
            arm, an interval of 1e9 s (one snapshot, then asleep), is reported too: in the kit
            before commit 194f272, =0 left the sampler thread in a wait(0) busy loop, which made
            =0 slower than sampling and no "off" baseline; the note says how =0 compares now.

(Target 4, the page's frame gaps, and the page of a finished 1M-event run, are
``scripts/bench_page.py``.) Before each target the script waits (up to ``--quiet-wait`` s) for the
machine to be at most ``--max-busy`` busy, and every figure is printed with the 1-minute load
average and the core count: other work on a 2-core machine moves these figures a lot.

The programs streamed are ``scripts/bench_lessons/9N_*.py``; the server is started with
``--lessons-dir scripts/bench_lessons`` (``tests.conftest.LiveServer``). Times are whole-operation
wall times with ``time.perf_counter`` (latency compares ``time.time()`` with the event's epoch ``t``,
the only clock the event carries). Figures are medians over repetitions where a target repeats.

The script exits 0 when it could measure, whether targets pass or fail (it reports); non-zero only
when a measurement could not be made (an exception, a server that would not start). It needs
websocketd (``/usr/bin/websocketd``) and installs it with apt-get when it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import websocket  # noqa: E402

from tests.conftest import LiveServer, free_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() \
    else sys.executable
BENCH_LESSONS = ROOT / "scripts" / "bench_lessons"
SAMPLE_INTERVAL = "0.1"  # what the server gives its lessons (app/__init__.py SAMPLE_INTERVAL)
IDLE_INTERVAL = "1e9"  # one snapshot at start, then asleep: the sampler truly off (see bench_sampler)


# -- reporting -------------------------------------------------------------------------------------


@dataclass
class Row:
    number: str
    metric: str
    value: str
    baseline: str
    goal: str
    ok: bool | None  # None: informational, no verdict
    load: str = ""  # the 1-minute load average when the figure was taken (other work shows here)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, number: str, metric: str, value: str, baseline: str, goal: str,
            ok: bool | None) -> None:
        now = f"{os.getloadavg()[0]:.2f}"
        self.rows.append(Row(number, metric, value, baseline, goal, ok, now))
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        progress(f"  -> {metric}: {value} (baseline {baseline}; target {goal}; load {now} on "
                 f"{os.cpu_count()} cores) {verdict}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        progress(f"  note: {text}")

    def print(self, title: str) -> None:
        head = ("#", "metric", "threadlab", "baseline", "target", "result", "load")
        cells = [head] + [(r.number, r.metric, r.value, r.baseline, r.goal,
                           "" if r.ok is None else ("PASS" if r.ok else "FAIL"), r.load)
                          for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        line = "  ".join("-" * w for w in widths)
        print(f"\n{title}; {os.cpu_count()} cores; load column: 1-minute load average at each figure")
        print(line)
        for i, c in enumerate(cells):
            print("  ".join(s.ljust(w) for s, w in zip(c, widths, strict=True)).rstrip())
            if i == 0:
                print(line)
        print(line)
        verdicts = [r.ok for r in self.rows if r.ok is not None]
        print(f"{sum(verdicts)} of {len(verdicts)} targets pass")
        for text in self.notes:
            print(f"  - {text}")
        for text in self.errors:
            print(f"  ERROR: {text}")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, linearly interpolated between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_busy(window: float = 1.0) -> float:
    """The share of the machine's CPU time that was busy over ``window`` seconds (/proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(window)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(max_busy: float = 0.25, timeout: float = 90.0) -> str:
    """Wait (up to ``timeout``) until other work leaves the machine mostly idle, so that a figure
    measures us, not a neighbour; say what it found (busy share, load average) either way."""
    if not hasattr(os, "getloadavg") or not os.path.exists("/proc/stat"):
        return "load unknown"
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    while busy > max_busy and time.monotonic() < deadline:
        busy = cpu_busy(2.0)
    verdict = "" if busy <= max_busy else f" (still busy after {timeout:.0f} s)"
    return f"machine {busy:.0%} busy before, load {load()}{verdict}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- clients ---------------------------------------------------------------------------------------


@dataclass
class Stream:
    """What one websocket client saw, start to end."""

    events: int = 0
    logs: int = 0
    messages: int = 0
    gapless: bool = True
    next_seq: int = 0
    close_code: int | None = None
    ended: str = ""  # close (a close frame), lost (connection dropped without one), timeout
    first_log: float | None = None  # perf_counter at the message that carried it
    last_log: float | None = None
    end: float | None = None
    latencies: list[float] = field(default_factory=list)


def connect(url: str, timeout: float = 30, **options) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True, **options)


def read_stream(ws: websocket.WebSocket, *, timeout: float = 60, check_seq: bool = True,
                latency_from: float | None = None) -> Stream:
    """Read JSON messages (an array of events, or one event per message) until the stream ends.

    ``latency_from``: an epoch time; each log event with ``t`` at or after it adds
    ``time.time()`` at its message's arrival minus ``t`` to ``latencies``.
    """
    seen = Stream()
    for data, arrived, arrived_epoch in frames(ws, seen, timeout):
        seen.messages += 1
        parsed = json.loads(data)
        batch = parsed if isinstance(parsed, list) else [parsed]
        for event in batch:
            seen.events += 1
            if check_seq:
                if event.get("seq") != seen.next_seq:
                    seen.gapless = False
                seen.next_seq = event.get("seq", seen.next_seq) + 1
            if event.get("kind") == "log":
                seen.logs += 1
                if seen.first_log is None:
                    seen.first_log = arrived
                seen.last_log = arrived
                if latency_from is not None and event["t"] >= latency_from:
                    seen.latencies.append(arrived_epoch - event["t"])
    return seen


def read_page(ws: websocket.WebSocket, timeout: float = 120) -> Stream:
    """Read a page socket's HTML fragments until it ends (counting messages only)."""
    seen = Stream()
    for _ in frames(ws, seen, timeout):
        seen.messages += 1
    return seen


def frames(ws: websocket.WebSocket, seen: Stream, timeout: float) -> Iterator[tuple[bytes, float, float]]:
    """Each data message with its arrival time (perf_counter and epoch), until the stream ends;
    how it ended goes into ``seen``."""
    ws.settimeout(timeout)
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            seen.ended = "timeout"
            break
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            seen.ended = "lost"
            break
        arrived, arrived_epoch = time.perf_counter(), time.time()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            seen.ended = "close"
            seen.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            break
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            yield data, arrived, arrived_epoch
    seen.end = time.perf_counter()
    with contextlib.suppress(Exception):
        ws.close()


# -- a client that is not the bottleneck: Node's `ws` ---------------------------------------------

NODE_DIR = Path(tempfile.gettempdir()) / "threadlab-bench-node"  # npm's prefix; never in the repo
SINK_JS = ROOT / "scripts" / "bench_client" / "sink.js"
CLIENT_MARGIN = 3.0  # the client must sink a trivial sender this many times faster than any figure


def ensure_node_ws() -> Path:
    """Node and the ``ws`` package (npm, into NODE_DIR): installed here when missing."""
    if not shutil.which("node") or not shutil.which("npm"):
        progress("node/npm are missing: apt-get update && apt-get install -y nodejs npm")
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "nodejs", "npm"], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    modules = NODE_DIR / "node_modules"
    if not (modules / "ws" / "package.json").exists():
        progress(f"installing Node's ws@8 into {NODE_DIR}")
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR),
                        "ws@8"], check=True, stdout=subprocess.DEVNULL)
    return modules


class NodeSink:
    """One Node process holding any number of websocket clients (scripts/bench_client/sink.js).

    ``open()`` starts a client; ``wait_open()``/``result()`` wait for its connection and its end.
    Times it reports are epoch seconds (``performance.timeOrigin + now()``), comparable with
    ``time.time()`` here and with each event's ``t``."""

    def __init__(self) -> None:
        modules = ensure_node_ws()
        self.proc = subprocess.Popen(["node", str(SINK_JS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, "NODE_PATH": str(modules)}, text=True, bufsize=1)
        self._cond = threading.Condition()
        self._seen: dict[str, dict[str, dict]] = {}
        ready = json.loads(self.proc.stdout.readline() or "{}")
        if ready.get("event") != "ready":
            raise RuntimeError("the Node sink did not start")
        self.version = ready.get("node", "?")
        self._ids = 0
        threading.Thread(target=self._pump, name="node-sink", daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                self._seen.setdefault(message["id"], {})[message["event"]] = message
                self._cond.notify_all()

    def open(self, url: str, kind: str = "json", **options) -> str:
        self._ids += 1
        cid = f"c{self._ids}"
        command = {"op": "open", "id": cid, "url": url, "kind": kind, **options}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return cid

    def _wait(self, cid: str, event: str, timeout: float) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: event in self._seen.get(cid, {}), timeout):
                raise RuntimeError(f"Node client {cid}: no '{event}' in {timeout} s")
            return self._seen[cid][event]

    def wait_open(self, cid: str, timeout: float = 30) -> float:
        return self._wait(cid, "open", timeout)["at"]

    def result(self, cid: str, timeout: float = 180) -> dict:
        return self._wait(cid, "done", timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One unmasked (server → client) websocket frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


@contextlib.contextmanager
def trivial_sender(stream: bytes) -> Iterator[str]:
    """A websocket server that answers each connection's handshake and writes ``stream`` (frames
    built beforehand) with one ``sendall``, then a close frame: nothing it does per event."""
    import base64
    import hashlib

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                            if line.lower().startswith(b"sec-websocket-key:")), b"")
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                          .digest())
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                    conn.sendall(stream + ws_frame((1000).to_bytes(2, "big"), opcode=8))
                    conn.settimeout(10)
                    conn.recv(4096)  # the client's close frame

    thread = threading.Thread(target=serve, name="trivial-sender", daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        listener.close()


def record_flood(count: int) -> list[bytes]:
    """The flood program's own lines (what both servers stream), recorded once."""
    done = subprocess.run([PYTHON, str(BENCH_LESSONS / "90_flood.py"), "--log-format", "json",
                           "--count", str(count)], cwd=ROOT, env=lesson_env(), capture_output=True,
                          check=True, timeout=120)
    return [line for line in done.stdout.split(b"\n") if b'"kind": "log"' in line]


def sink_rate(sink: NodeSink, stream: bytes, events: int, check_seq: bool) -> float:
    """Events per second the Node client takes in from the trivial sender (connect → last event)."""
    with trivial_sender(stream) as url:
        began = time.time()
        cid = sink.open(url, "json", check_seq=check_seq, timeout=120)
        seen = sink.result(cid)
    if seen["logs"] != events:
        raise RuntimeError(f"the Node client got {seen['logs']} of {events} events from the trivial sender")
    return events / (seen["last_log"] - began)


@dataclass
class ClientCheck:
    """What the Node client sinks, in both shapes the servers send: websocketd's one line a message,
    and threadlab's arrays (``per_message`` events each, fewer than threadlab's floods carry)."""

    per_line: float = 0.0
    per_array: float = 0.0
    per_message: int = 16
    node: str = ""

    def verdict(self, line_rate: float, array_rate: float) -> tuple[bool, str]:
        ok = self.per_line >= CLIENT_MARGIN * line_rate and self.per_array >= CLIENT_MARGIN * array_rate
        text = (f"client check (Node {self.node} + ws): sinks a trivial sender's pre-recorded flood at "
                f"{self.per_line:,.0f} lines/s one a message ({self.per_line / max(line_rate, 1):.1f}x "
                f"websocketd's {line_rate:,.0f}/s) and {self.per_array:,.0f} events/s in arrays of "
                f"{self.per_message} ({self.per_array / max(array_rate, 1):.1f}x threadlab's "
                f"{array_rate:,.0f}/s): {'not' if ok else 'MAY BE'} the bottleneck "
                f"(needs >= {CLIENT_MARGIN:.0f}x)")
        return ok, text


def check_client(sink: NodeSink, count: int, reps: int) -> ClientCheck:
    lines = record_flood(count)
    per_line = b"".join(ws_frame(line) for line in lines)
    check = ClientCheck(node=sink.version)
    n = check.per_message
    per_array = b"".join(
        ws_frame(b"[" + b",".join(b'{"seq": %d, ' % (i + j) + line[1:]
                                  for j, line in enumerate(lines[i:i + n])) + b"]")
        for i in range(0, len(lines), n))
    check.per_line = statistics.median(sink_rate(sink, per_line, len(lines), False) for _ in range(reps))
    check.per_array = statistics.median(sink_rate(sink, per_array, len(lines), True) for _ in range(reps))
    progress(f"    client check: {check.per_line:,.0f} lines/s one a message, {check.per_array:,.0f} "
             f"events/s in arrays of {n} (trivial sender, {len(lines):,} recorded lines)")
    return check


# -- the two servers -------------------------------------------------------------------------------


def ensure_websocketd() -> str:
    debian = "/usr/bin/websocketd"
    found = shutil.which("websocketd") or (debian if os.path.exists(debian) else None)
    if found:
        return found
    progress("websocketd is missing: apt-get update && apt-get install -y websocketd")
    subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "websocketd"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("websocketd")
    if not found:
        raise RuntimeError("websocketd could not be installed")
    return found


def lesson_env(**extra: str) -> dict[str, str]:
    """The environment the server gives a lesson (the parts that matter for speed)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8",
            "THREADLAB_SAMPLE_INTERVAL": SAMPLE_INTERVAL, **extra}


@contextlib.contextmanager
def websocketd(lesson: str, *args: str) -> Iterator[str]:
    """websocketd serving ``lesson`` (a file in bench_lessons) in JSON mode; yields its ws:// URL."""
    port = free_port()
    passenv = "PATH,LD_LIBRARY_PATH,PYTHONPATH,PYTHONIOENCODING,PYTHONUNBUFFERED,PYTHONDONTWRITEBYTECODE," \
              "THREADLAB_SAMPLE_INTERVAL"
    argv = [ensure_websocketd(), "--address", "127.0.0.1", "--port", str(port), "--loglevel", "error",
            "--passenv", passenv, "--", PYTHON, str(BENCH_LESSONS / lesson), "--log-format", "json",
            *args]
    proc = subprocess.Popen(argv, cwd=ROOT, env=lesson_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"websocketd did not start: {argv}") from None
                time.sleep(0.02)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(data_dir: Path) -> LiveServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    return LiveServer(data_dir, "--lessons-dir", str(BENCH_LESSONS))


def json_url(server: LiveServer, run_id: str) -> str:
    return f"ws://127.0.0.1:{server.port}/api/runs/{run_id}/ws"


def page_url(server: LiveServer, run_id: str) -> str:
    return f"ws://127.0.0.1:{server.port}/runs/{run_id}/ws"


def server_processes(server: LiveServer) -> list[psutil.Process]:
    """The serve process and its descendants that are not lessons (gunicorn master + worker)."""
    root = psutil.Process(server.proc.pid)
    found = [root]
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "--log-format" not in child.cmdline():
                found.append(child)
    return found


def server_rss(server: LiveServer) -> int:
    total = 0
    for proc in server_processes(server):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def server_cpu(server: LiveServer) -> float:
    total = 0.0
    for proc in server_processes(server):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


# -- the targets -----------------------------------------------------------------------------------


@dataclass
class Plan:
    quick: bool
    start_runs: int
    flood_count: int
    flood_reps: int
    latency_seconds: int
    latency_reps: int
    memory_count: int
    fanout_count: int
    fanout_reps: int
    stall_wait: float
    end_runs: int
    sampler_pairs: int
    sampler_work: int
    classroom_seconds: int = 10
    classroom_reps: int = 3
    max_busy: float = 0.25  # --max-busy / --quiet-wait: see wait_quiet
    quiet_wait: float = 90.0


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(True, start_runs=20, flood_count=100_000, flood_reps=2, latency_seconds=3,
                    latency_reps=1, memory_count=300_000, fanout_count=30_000, fanout_reps=1,
                    stall_wait=5, end_runs=100, sampler_pairs=3, sampler_work=4_000_000,
                    classroom_seconds=5, classroom_reps=1)
    return Plan(False, start_runs=60, flood_count=200_000, flood_reps=5, latency_seconds=10,
                latency_reps=3, memory_count=1_000_000, fanout_count=30_000, fanout_reps=3,
                stall_wait=20, end_runs=100, sampler_pairs=7, sampler_work=12_000_000)


def bench_start(report: Report, plan: Plan, server: LiveServer) -> None:
    progress(f"[1] start: {plan.start_runs} runs of 91_first_line, each way")
    ours: list[float] = []
    theirs: list[float] = []
    with websocketd("91_first_line.py") as peer:
        for _ in range(3):  # warm both (page cache, the registry's first read)
            read_stream(connect(peer), check_seq=False)
            run_id = server.start("91")
            read_stream(connect(json_url(server, run_id)))
        for _ in range(plan.start_runs):
            began = time.perf_counter()
            seen = read_stream(connect(peer), check_seq=False, timeout=10)
            if seen.first_log is None:
                raise RuntimeError(f"websocketd sent no line ({seen.ended})")
            theirs.append(seen.first_log - began)

            began = time.perf_counter()
            run_id = server.start("91")
            seen = read_stream(connect(json_url(server, run_id)), timeout=10)
            if seen.first_log is None:
                raise RuntimeError(f"run {run_id} sent no log event ({seen.ended})")
            ours.append(seen.first_log - began)
    p50, base50 = statistics.median(ours), statistics.median(theirs)
    report.add("1", "start p50 (POST → first log event)", ms(p50), f"{ms(base50)} websocketd",
               f"<= 1.4x ({ms(1.4 * base50)})", p50 <= 1.4 * base50)
    report.add("1", "start p99", ms(pct(ours, 99)), f"{ms(pct(theirs, 99))} websocketd",
               "<= 100 ms", pct(ours, 99) <= 0.100)
    report.note(f"start: threadlab min/p50/max {ms(min(ours))}/{ms(p50)}/{ms(max(ours))}, "
                f"{sum(x > 1 for x in ours)} of {len(ours)} over 1 s; websocketd "
                f"{ms(min(theirs))}/{ms(base50)}/{ms(max(theirs))} (n={len(ours)})")


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def bare_pipe(n: int) -> float:
    """The floor: the flood program's lines/s into a bare pipe that a reader empties and drops
    (spawn → end of file, as the servers are timed: spawn → last line at the client)."""
    began = time.time()
    proc = subprocess.Popen([PYTHON, str(BENCH_LESSONS / "90_flood.py"), "--log-format", "json",
                             "--count", str(n)], cwd=ROOT, env=lesson_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE)
    lines = 0
    while data := os.read(proc.stdout.fileno(), 256 * 1024):
        lines += data.count(b"\n")
    elapsed = time.time() - began
    proc.wait()
    if lines != n + 1:  # and the result line
        raise RuntimeError(f"bare pipe: {lines} lines of {n + 1}")
    return n / elapsed


def bench_flood(report: Report, plan: Plan, server: LiveServer, data_dir: Path, sink: NodeSink) -> None:
    n = plan.flood_count
    progress(f"[2] flood: {n:,} lines, {plan.flood_reps} runs each way, Node ws client")
    check = check_client(sink, n, 3)
    ours: list[float] = []
    theirs: list[float] = []
    problems: list[str] = []
    messages: list[int] = []
    cpu: list[float] = []
    floor: list[float] = []
    with websocketd("90_flood.py", "--count", str(n)) as peer:
        for rep in range(plan.flood_reps):
            quiet = wait_quiet(plan.max_busy, plan.quiet_wait)
            floor.append(bare_pipe(n))
            began = time.time()
            seen = sink.result(sink.open(peer, "json", check_seq=False, timeout=120))
            if seen["logs"] != n:
                problems.append(f"websocketd delivered {seen['logs']} of {n}")
            theirs.append(seen["logs"] / (seen["last_log"] - began))

            cpu_before = server_cpu(server)
            began = time.time()
            run_id = server.start("90", count=n)
            seen = sink.result(sink.open(json_url(server, run_id), "json", timeout=120))
            elapsed = seen["last_log"] - began if seen["last_log"] else math.inf
            cpu.append(server_cpu(server) - cpu_before)
            ours.append(seen["logs"] / elapsed)
            messages.append(seen["messages"])
            server.wait_status(run_id)
            lines = count_lines(data_dir / "runs" / run_id / "events.jsonl")
            if seen["logs"] != n or not seen["gapless"] or seen["close_code"] != 1000 \
                    or lines != seen["events"]:
                problems.append(f"rep {rep}: {seen['logs']}/{n} log events, gapless={seen['gapless']}, "
                                f"close={seen['close_code'] or seen['ended']}, events.jsonl {lines} lines "
                                f"vs {seen['events']} events received")
            progress(f"    rep {rep}: threadlab {ours[-1]:,.0f}/s in {seen['messages']} messages "
                     f"(server CPU {cpu[-1]:.2f} s); websocketd {theirs[-1]:,.0f}/s; bare pipe "
                     f"{floor[-1]:,.0f}/s; {quiet}")
    rate, base = statistics.median(ours), statistics.median(theirs)
    client_ok, client_text = check.verdict(max(theirs), max(ours))
    report.add("2", "client check: trivial sender → Node ws client, lines/s",
               f"{check.per_array:,.0f}/s (arrays of {check.per_message})",
               f"{check.per_line:,.0f}/s (one a message)", f">= {CLIENT_MARGIN:.0f}x every rate below",
               client_ok)
    report.note(client_text)
    report.add("2", f"flood {n // 1000}k lines: lines/s", f"{rate:,.0f}/s ({rate / base:.2f}x)",
               f"{base:,.0f}/s websocketd", f">= 1.3x ({1.3 * base:,.0f}/s)", rate >= 1.3 * base)
    bare = statistics.median(floor)
    report.add("2", "flood: lines/s against the bare-pipe floor", f"{rate:,.0f}/s ({rate / bare:.0%})",
               f"{bare:,.0f}/s into a bare pipe", "(info) how close to the floor", None)
    report.add("2", "flood: every event delivered, gapless, on disk", "yes" if not problems else "NO",
               "-", "all", not problems)
    for text in problems:
        report.note(f"flood: {text}")
    report.note(f"flood: median {statistics.median(messages):,.0f} messages for {n:,} events "
                f"({n / statistics.median(messages):.1f} events/message); server CPU "
                f"{statistics.median(cpu):.2f} s per flood ({statistics.median(cpu) / n * 1e6:.1f} µs "
                f"an event); threadlab each rep {', '.join(f'{x:,.0f}' for x in ours)}; websocketd "
                f"{', '.join(f'{x:,.0f}' for x in theirs)}")
    if min(messages) and n / statistics.median(messages) < check.per_message:
        report.note(f"flood: threadlab's messages carried fewer events than the client check's "
                    f"{check.per_message}: the check is not a bound for them")


def bench_latency(report: Report, plan: Plan, server: LiveServer, sink: NodeSink) -> None:
    secs = plan.latency_seconds
    progress(f"[3] latency: 1000 events/s for {secs} s, {plan.latency_reps} runs each way (Node client)")
    ours: list[float] = []
    theirs: list[float] = []
    ours_p50: list[float] = []
    with websocketd("92_steady.py", "--rate", "1000", "--seconds", str(secs)) as peer:
        for _ in range(plan.latency_reps):
            seen = sink.result(sink.open(peer, "json", check_seq=False, timeout=secs + 30,
                                         latency_from=time.time() + 0.25))
            theirs.append(seen["latency_p99"])

            run_id = server.start("92", rate=1000, seconds=secs)
            seen = sink.result(sink.open(json_url(server, run_id), "json", timeout=secs + 30,
                                         latency_from=time.time() + 0.25))
            if not seen["latency_n"]:
                raise RuntimeError("no log events to time")
            ours.append(seen["latency_p99"])
            ours_p50.append(seen["latency_p50"])
            progress(f"    threadlab p50 {ms(ours_p50[-1])} p99 {ms(ours[-1])} max "
                     f"{ms(seen['latency_max'])} ({seen['latency_n']} events, "
                     f"{seen['messages']} messages); websocketd p99 {ms(theirs[-1])}; load {load()}")
    p99 = statistics.median(ours)
    report.add("3", "latency p99 at 1k events/s", ms(p99), f"{ms(statistics.median(theirs))} websocketd",
               "<= 5 ms", p99 <= 0.005)
    report.note(f"latency: threadlab p50 {ms(statistics.median(ours_p50))}")


def classroom_once(server: LiveServer, sink: NodeSink, seconds: int, json_viewers: int, page_viewers: int,
                   troubles: bool) -> dict:
    """One run of 92_steady at 1,000 events/s watched by ``json_viewers`` JSON and ``page_viewers``
    page websockets (Node clients), all connected before the lesson writes its first line; with
    ``troubles``, also one JSON viewer that stalls (a 4 KB receive buffer, never read), one page
    viewer that stalls, and one JSON viewer that drops its connection halfway and reconnects with
    ``?after=``. Server CPU (gunicorn master + worker) is taken over the run's life."""
    rate = 1000
    total = rate * seconds
    cpu_before, wall_before = server_cpu(server), time.perf_counter()
    run_id = server.start("92", rate=rate, seconds=seconds)
    from_t = time.time() + 0.5  # events after the viewers are all connected (before: history)
    ids = [sink.open(json_url(server, run_id), "json", latency_from=from_t, timeout=seconds + 60,
                     keep_latencies=True) for _ in range(json_viewers)]
    pages = [sink.open(page_url(server, run_id), "page", timeout=seconds + 60) for _ in range(page_viewers)]
    stalled = []
    rejoin = None
    if troubles:
        rejoin = sink.open(json_url(server, run_id), "json", latency_from=from_t, timeout=seconds + 60,
                           reconnect_after=total // 2)
        for url in (json_url(server, run_id), page_url(server, run_id)):
            stalled.append(connect(url, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]))
    seen = [sink.result(cid, seconds + 90) for cid in ids]
    page_seen = [sink.result(cid, seconds + 90) for cid in pages]
    server.wait_status(run_id, timeout=seconds + 60)
    cpu = (server_cpu(server) - cpu_before) / (time.perf_counter() - wall_before)
    rejoined = sink.result(rejoin, seconds + 90) if rejoin else None
    for ws in stalled:
        ws.sock.close()
    latencies = sorted(x for s in seen for x in s.get("latency_values", []))
    complete = [s["logs"] == total and s["gapless"] and s["close_code"] == 1000 for s in seen]
    return {
        "p99": pct(latencies, 99), "p50": pct(latencies, 50), "max": max(latencies, default=math.nan),
        "worst_p99": max((s["latency_p99"] or math.nan) for s in seen),
        "complete": sum(complete), "viewers": len(seen), "cpu": cpu,
        "pages_closed": sum(s["close_code"] == 1000 for s in page_seen),
        "page_messages": statistics.median(s["messages"] for s in page_seen) if page_seen else 0,
        "rejoined": None if rejoined is None else
        (rejoined["logs"] == total and rejoined["gapless"] and rejoined["reconnects"] == 1),
        "bad": [f"{s['logs']}/{total} gapless={s['gapless']} end={s['close_code'] or s['ended']}"
                for s, ok in zip(seen, complete, strict=True) if not ok],
    }


def bench_classroom(report: Report, plan: Plan, server: LiveServer, sink: NodeSink) -> None:
    secs = plan.classroom_seconds
    progress(f"[3b] classroom: one run at 1,000 events/s for {secs} s; 1 JSON viewer, then 10 JSON + 20 "
             f"page viewers, then the same with a stalled JSON viewer, a stalled page viewer and one "
             f"that reconnects; {plan.classroom_reps} rounds")
    alone, crowd, trouble = [], [], []
    for _ in range(plan.classroom_reps):
        progress(f"    {wait_quiet(plan.max_busy, plan.quiet_wait)}")
        alone.append(classroom_once(server, sink, secs, 1, 0, False))
        crowd.append(classroom_once(server, sink, secs, 10, 20, False))
        trouble.append(classroom_once(server, sink, secs, 10, 20, True))
        progress(f"    p99 latency: alone {ms(alone[-1]['p99'])}, 30 viewers {ms(crowd[-1]['p99'])}, with "
                 f"troubles {ms(trouble[-1]['p99'])}; server CPU {alone[-1]['cpu']:.2f} / "
                 f"{crowd[-1]['cpu']:.2f} / {trouble[-1]['cpu']:.2f} cores; complete "
                 f"{crowd[-1]['complete']}/10, {trouble[-1]['complete']}/10; load {load()}")
    base = statistics.median(o["p99"] for o in alone)
    p99 = statistics.median(o["p99"] for o in crowd)
    p99_trouble = statistics.median(o["p99"] for o in trouble)
    every = crowd + trouble
    complete = all(o["complete"] == o["viewers"] for o in every)
    report.add("3", "classroom: 10 JSON viewers got every event, in order",
               f"{sum(o['complete'] for o in every)}/{sum(o['viewers'] for o in every)}", "-",
               "all", complete)
    report.add("3", "classroom: delivery latency p99 (30 viewers)", ms(p99),
               f"{ms(base)} one JSON viewer alone", "<= 50 ms", p99 <= 0.050)
    cpu = statistics.median(o["cpu"] for o in crowd)
    report.add("3", "classroom: server CPU (30 viewers)", f"{cpu:.2f} cores",
               f"{statistics.median(o['cpu'] for o in alone):.2f} cores, one viewer", "<= 1 core", cpu <= 1.0)
    report.add("3", "classroom: p99 with 2 stalled viewers + 1 reconnecting", ms(p99_trouble),
               f"{ms(p99)} without", "<= 50 ms", p99_trouble <= 0.050)
    rejoined = all(o["rejoined"] for o in trouble)
    report.add("3", "classroom: the reconnecting viewer got every event (?after=)",
               "yes" if rejoined else "NO", "-", "all", rejoined)
    report.note(f"classroom: latency p50 {ms(statistics.median(o['p50'] for o in crowd))}, worst viewer's "
                f"p99 {ms(max(o['worst_p99'] for o in crowd))}, max {ms(max(o['max'] for o in crowd))}; "
                f"with troubles max {ms(max(o['max'] for o in trouble))}; CPU with troubles "
                f"{statistics.median(o['cpu'] for o in trouble):.2f} cores; page viewers closed normally "
                f"{min(o['pages_closed'] for o in every)}/20 at least, median "
                f"{statistics.median(o['page_messages'] for o in crowd):.0f} messages each")
    for o in every:
        for text in o["bad"]:
            report.note(f"classroom: incomplete JSON viewer: {text}")


def download(report: Report, server: LiveServer, run_id: str, path: Path) -> None:
    """The finished flood's NDJSON download (GET /api/runs/<id>/events) with curl (a client that is
    not the bottleneck), against reading the same file from the disk itself (``dd iflag=direct``,
    which bypasses the page cache); the server's RSS is sampled while it streams."""
    size = path.stat().st_size

    def disk() -> float:
        done = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=4M", "iflag=direct"],
                              capture_output=True, text=True, check=True)
        return float(done.stderr.strip().splitlines()[-1].split(" copied, ")[1].split(" s")[0])

    def get() -> tuple[float, int, int]:
        peak = [server_rss(server)]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak.append(server_rss(server))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                              "%{time_total} %{size_download} %{time_starttransfer}",
                              f"{server.url}/api/runs/{run_id}/events"], capture_output=True, text=True,
                             check=True).stdout.split()
        done.set()
        sampler.join()
        first_byte.append(float(out[2]))
        return float(out[0]) - float(out[2]), int(out[1]), max(peak)

    if not shutil.which("curl"):
        report.note("download: curl is missing, not measured")
        return
    rest = server_rss(server)
    first_byte: list[float] = []
    disk_s = statistics.median(disk() for _ in range(3))
    gets = [get() for _ in range(3)]
    took = statistics.median(g[0] for g in gets)
    mb = size / 2**20
    report.add("5", f"NDJSON download of that run ({mb:.0f} MB), MB/s after the first byte (curl)",
               f"{mb / took:,.0f} MB/s",
               f"{mb / disk_s:,.0f} MB/s from the disk (O_DIRECT)", "disk speed (>= 0.8x)",
               took <= disk_s / 0.8)
    grew = max(g[2] for g in gets) - rest
    report.add("5", "server RSS while it downloads", f"+{grew / 2**20:.0f} MB",
               f"{rest / 2**20:.0f} MB before", "not the run in memory", grew < 0.25 * size)
    report.note(f"download: first byte after {ms(statistics.median(first_byte))} (median), then streamed "
                f"(the rate above); medians of 3 each way")
    if any(g[1] != size for g in gets):
        report.note(f"download: {[g[1] for g in gets]} bytes of a {size:,}-byte file")


def bench_memory(report: Report, plan: Plan, tmp: Path) -> None:
    n = plan.memory_count
    progress(f"[5] memory: a fresh server through a {n:,}-line flood (JSON + page viewer)")
    server = start_server(tmp / "memory")
    try:
        time.sleep(0.5)
        # One tiny run first, so the resting figure includes a worker that has served a run.
        read_stream(connect(json_url(server, server.start("91"))))
        time.sleep(0.5)
        rest = server_rss(server)
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(server_rss(server))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        run_id = server.start("90", count=n)
        page: list[Stream] = []
        page_thread = threading.Thread(
            target=lambda: page.append(read_page(connect(page_url(server, run_id)), timeout=300)),
            daemon=True)
        page_thread.start()
        seen = read_stream(connect(json_url(server, run_id)), timeout=300)
        page_thread.join(300)
        server.wait_status(run_id)
        time.sleep(0.3)
        done.set()
        sampler.join()
        after = server_rss(server)
        peak = max(samples)
        download(report, server, run_id, tmp / "memory" / "runs" / run_id / "events.jsonl")
        report.add("5", f"server RSS peak, {n // 1000}k-line flood", f"{peak / 2**20:.0f} MB",
                   f"{rest / 2**20:.0f} MB at rest", "< 150 MB", peak < 150 * 2**20)
        report.note(f"memory: {len(samples)} samples; RSS after the run ended {after / 2**20:.0f} MB; "
                    f"JSON viewer got {seen.logs:,}/{n:,} log events (gapless={seen.gapless}), "
                    f"page viewer {page[0].messages if page else '?'} messages")
        if seen.logs != n:
            report.note(f"memory: JSON viewer missed events ({seen.logs} of {n}, {seen.ended})")
    finally:
        server.stop()


def worker_connection_state(server: LiveServer, client_port: int) -> str:
    """The server-side TCP state of the connection from ``client_port`` ('gone' when closed)."""
    for proc in server_processes(server):
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == client_port:
                    return conn.status
    return "gone"


def fanout_once(server: LiveServer, count: int, stalled: bool, stall_wait: float) -> dict:
    """8 floods, 2 JSON + 2 page viewers each (+ one stalled JSON viewer); completion times."""
    results: list[tuple[str, Stream, float, int]] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    stall_ws = None
    run_ids: list[str] = []
    posted: list[float] = []
    post_took: list[float] = []
    began = time.perf_counter()
    began_epoch = time.time()

    def view(kind: str, url: str, index: int) -> None:
        try:
            ws = connect(url, timeout=120)
            seen = read_stream(ws, timeout=120) if kind == "json" else read_page(ws, timeout=120)
        except Exception as exc:  # a refused or broken connection is a result too
            seen = Stream(ended=f"error: {exc}")
            seen.end = time.perf_counter()
        with lock:
            results.append((kind, seen, seen.end - began, index))

    for i in range(8):
        before = time.perf_counter()
        run_id = server.start("90", count=count)
        run_ids.append(run_id)
        posted.append(time.perf_counter() - began)
        post_took.append(time.perf_counter() - before)
        if stalled and i == 0:
            stall_ws = connect(json_url(server, run_id),
                               sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        for kind in ("json", "page", "json", "page"):
            url = json_url(server, run_id) if kind == "json" else page_url(server, run_id)
            thread = threading.Thread(target=view, args=(kind, url, i), daemon=True)
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join(180)
    json_seen = [(s, t) for k, s, t, _ in results if k == "json"]
    page_seen = [(s, t) for k, s, t, _ in results if k == "page"]
    per_run = []
    lags: list[float] = []
    for i, run_id in enumerate(run_ids):
        run = server.get_json(f"/api/runs/{run_id}")
        ended = (run["ended"] or math.nan) - began_epoch  # seconds since the first POST
        done = [t for k, _, t, j in results if k == "json" and j == i]
        lags += [t - ended for t in done]
        per_run.append(f"run {i}: POST returned at {posted[i]:.2f} s (took {post_took[i]:.2f} s), "
                       f"lesson ended {ended:.2f} s, "
                       f"its JSON viewers done {max(done, default=math.nan):.2f} s")
    complete = all(s.logs == count and s.gapless and s.close_code == 1000 for s, _ in json_seen) \
        and len(json_seen) == 16
    pages_closed = all(s.close_code == 1000 for s, _ in page_seen) and len(page_seen) == 16
    outcome = {
        "json_median": statistics.median(t for _, t in json_seen),
        "json_max": max(t for _, t in json_seen),
        "page_max": max(t for _, t in page_seen),
        "complete": complete,
        "pages_closed": pages_closed,
        "per_run": per_run,
        "lag": statistics.median(lags) if lags else math.nan,
        "post_max": max(post_took),
        "bad": [f"{s.logs}/{count} gapless={s.gapless} end={s.close_code or s.ended}"
                for s, _ in json_seen if not (s.logs == count and s.gapless and s.close_code == 1000)],
    }
    if stall_ws is not None:
        client_port = stall_ws.sock.getsockname()[1]
        waited_from = time.perf_counter()
        state = worker_connection_state(server, client_port)
        while state == "ESTABLISHED" and time.perf_counter() - waited_from < stall_wait:
            time.sleep(0.5)
            state = worker_connection_state(server, client_port)
        outcome["stall_state"] = f"{state} (Send-Q {send_queue(server.port, client_port)})"
        outcome["stall_cut"] = state != "ESTABLISHED"
        outcome["stall_after"] = time.perf_counter() - began
        stall_ws.sock.close()  # let the server thread that is stuck sending to it go
    for run in server.get_json("/api/runs")[:8]:
        if run["status"] in ("starting", "running", "stopping"):
            server.wait_status(run["id"])
    return outcome


def send_queue(server_port: int, client_port: int) -> str:
    """The server side's Send-Q for the connection from ``client_port``, from ``ss`` ('?' if none)."""
    if not shutil.which("ss"):
        return "?"
    query = f"( sport = :{server_port} and dport = :{client_port} )"
    out = subprocess.run(["ss", "-Htn", "state", "all", query], capture_output=True, text=True).stdout.split()
    return f"{int(out[2]):,} B" if len(out) >= 3 and out[2].isdigit() else "?"


def bench_fanout(report: Report, plan: Plan, server: LiveServer) -> None:
    progress(f"[6] fan-out: 8 runs x {plan.fanout_count:,} events, 2 JSON + 2 page viewers each, "
             f"{plan.fanout_reps} rounds without and with a stalled viewer")
    plain: list[dict] = []
    stalled: list[dict] = []
    for _ in range(plan.fanout_reps):
        plain.append(fanout_once(server, plan.fanout_count, False, plan.stall_wait))
        progress("      " + "\n      ".join(plain[-1]["per_run"]))
        progress(f"    without stall: JSON viewers median {plain[-1]['json_median']:.2f} s, "
                 f"max {plain[-1]['json_max']:.2f} s, complete={plain[-1]['complete']}")
        stalled.append(fanout_once(server, plan.fanout_count, True, plan.stall_wait))
        progress("      " + "\n      ".join(stalled[-1]["per_run"]))
        progress(f"    with stall:    JSON viewers median {stalled[-1]['json_median']:.2f} s, "
                 f"max {stalled[-1]['json_max']:.2f} s, complete={stalled[-1]['complete']}, "
                 f"stalled socket {stalled[-1]['stall_state']}")
    every = plain + stalled
    complete = all(o["complete"] for o in every)
    report.add("6", "fan-out: every JSON viewer complete + gapless", "yes" if complete else "NO",
               "-", "16 of 16 per round", complete)
    base = statistics.median(o["json_max"] for o in plain)
    with_stall = statistics.median(o["json_max"] for o in stalled)
    report.add("6", "fan-out: all others done, with a stalled viewer", f"{with_stall:.2f} s",
               f"{base:.2f} s without", f"<= 1.2x ({1.2 * base:.2f} s)", with_stall <= 1.2 * base)
    cut = all(o["stall_cut"] for o in stalled)
    report.add("6", "fan-out: stalled viewer cut loose", "yes" if cut else "no",
               "-", f"(info) watched {plan.stall_wait:.0f} s after the others", None)
    states = sorted({o["stall_state"] for o in stalled})
    report.note("fan-out: median JSON viewer done at "
                f"{statistics.median(o['json_median'] for o in plain):.2f} s "
                f"without / {statistics.median(o['json_median'] for o in stalled):.2f} s with the stall "
                f"(from the first POST); a JSON viewer's close came a median "
                f"{ms(statistics.median(o['lag'] for o in plain))} / "
                f"{ms(statistics.median(o['lag'] for o in stalled))} after its lesson ended; slowest "
                f"page viewer {statistics.median(o['page_max'] for o in plain):.2f} s / "
                f"{statistics.median(o['page_max'] for o in stalled):.2f} s")
    report.note(f"fan-out: POST /runs while the earlier floods stream took up to "
                f"{max(o['post_max'] for o in every):.2f} s (later runs start late, which spreads the "
                f"completion times)")
    report.note(f"fan-out: stalled socket's server side after the others were done: {', '.join(states)}")
    if not all(o["pages_closed"] for o in every):
        report.note("fan-out: some page sockets did not end with a normal close frame")
    for o in every:
        for text in o["bad"]:
            report.note(f"fan-out: incomplete JSON viewer: {text}")


def bench_ends(report: Report, plan: Plan, server: LiveServer) -> None:
    progress(f"[7] ends: {plan.end_runs} short runs in a row")
    closes: dict[str, int] = {}
    each: list[float] = []
    began = time.perf_counter()
    for _ in range(plan.end_runs):
        each.append(time.perf_counter())
        run_id = server.start("91")
        seen = read_stream(connect(json_url(server, run_id), timeout=10), timeout=10)
        key = f"close {seen.close_code}" if seen.ended == "close" else seen.ended
        if seen.logs != 1 or not seen.gapless:
            key += " (events missing)"
        closes[key] = closes.get(key, 0) + 1
        each[-1] = time.perf_counter() - each[-1]
    elapsed = time.perf_counter() - began
    normal = closes.get("close 1000", 0)
    report.add("7", f"streams ended with close 1000 ({plan.end_runs} runs)",
               f"{normal}/{plan.end_runs}", "-", f"{plan.end_runs}/{plan.end_runs}, none hanging",
               normal == plan.end_runs)
    report.note(f"ends: {dict(sorted(closes.items()))}; {elapsed / plan.end_runs * 1000:.0f} ms a run "
                f"on average, median {ms(statistics.median(each))}, {sum(x > 1 for x in each)} runs "
                f"over 1 s (POST → close frame)")


def bench_sampler(report: Report, plan: Plan) -> None:
    progress(f"[8] sampler: {plan.sampler_pairs} rounds of 93_cpu --work {plan.sampler_work:,}, "
             f"interval {SAMPLE_INTERVAL} / 0 / {IDLE_INTERVAL}")

    def once(interval: str) -> float:
        began = time.perf_counter()
        done = subprocess.run(
            [PYTHON, str(BENCH_LESSONS / "93_cpu.py"), "--log-format", "json",
             "--work", str(plan.sampler_work)],
            cwd=ROOT, env=lesson_env(THREADLAB_SAMPLE_INTERVAL=interval),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
        )
        elapsed = time.perf_counter() - began
        if done.returncode != 0 or b'"kind": "result"' not in done.stdout:
            raise RuntimeError(f"93_cpu failed ({done.returncode}): {done.stderr[-500:]!r}")
        return elapsed

    once("0")  # warm the page cache
    arms = (SAMPLE_INTERVAL, "0", IDLE_INTERVAL)
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for round_ in range(plan.sampler_pairs):
        # Rotate the order so that drift (other load, CPU clocks) falls on every arm alike.
        for arm in arms[round_ % 3:] + arms[: round_ % 3]:
            times[arm].append(once(arm))
        progress(f"    round {round_}: on {times[SAMPLE_INTERVAL][-1]:.3f} s, =0 {times['0'][-1]:.3f} s, "
                 f"idle {times[IDLE_INTERVAL][-1]:.3f} s")
    on = times[SAMPLE_INTERVAL]
    ratio = statistics.median(a / b for a, b in zip(on, times["0"], strict=True))
    real = statistics.median(a / b for a, b in zip(on, times[IDLE_INTERVAL], strict=True))
    report.add("8", "CPU-bound lesson, sampler 0.1 vs =0 (as specified)",
               f"{statistics.median(on):.3f} s ({ratio:.3f}x)",
               f"{statistics.median(times['0']):.3f} s with =0", "<= 1.05x", ratio <= 1.05)
    report.add("8", f"CPU-bound lesson, sampler 0.1 vs idle ({IDLE_INTERVAL} s)",
               f"{statistics.median(on):.3f} s ({real:.3f}x)",
               f"{statistics.median(times[IDLE_INTERVAL]):.3f} s idle", "<= 1.05x", real <= 1.05)
    zero_vs_idle = statistics.median(a / b for a, b in zip(times["0"], times[IDLE_INTERVAL], strict=True))
    report.note(f"sampler: a run with THREADLAB_SAMPLE_INTERVAL=0 took {zero_vs_idle:.3f}x one with the "
                f"sampler idle ({IDLE_INTERVAL} s: one snapshot at start, then asleep)"
                + ("; =0 is no 'off' baseline here: the sampler thread still competes for the GIL "
                   "(a wait(0) busy loop in the kit before commit 194f272)" if zero_vs_idle > 1.10 else "")
                + f". Medians of {plan.sampler_pairs} per-round ratios.")


TARGETS = ("start", "flood", "latency", "classroom", "memory", "fanout", "ends", "sampler")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller counts")
    parser.add_argument("--only", default=",".join(TARGETS),
                        help=f"comma-separated subset of: {', '.join(TARGETS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    parser.add_argument("--max-busy", type=float, default=0.25,
                        help="before each target, wait until the machine is at most this busy "
                             "(share of all cores, other work included)")
    parser.add_argument("--quiet-wait", type=float, default=90.0,
                        help="seconds to wait for that at most, then measure anyway (and say so)")
    args = parser.parse_args(argv)
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(chosen) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    plan = make_plan(args.quick)
    plan.max_busy, plan.quiet_wait = args.max_busy, args.quiet_wait
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="threadlab-bench-"))
    began = time.perf_counter()
    progress(f"bench_stream ({'quick' if plan.quick else 'full'}); data in {tmp}; "
             f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; load {load()}")
    ensure_websocketd()
    server: LiveServer | None = None
    sinks: list[NodeSink] = []

    def node() -> NodeSink:
        if not sinks:
            sinks.append(NodeSink())
        return sinks[0]

    try:
        needs_server = [t for t in chosen
                        if t in ("start", "flood", "latency", "classroom", "fanout", "ends")]
        if needs_server:
            server = start_server(tmp / "shared")
        steps: dict[str, Callable[[], None]] = {
            "start": lambda: bench_start(report, plan, server),
            "flood": lambda: bench_flood(report, plan, server, tmp / "shared", node()),
            "latency": lambda: bench_latency(report, plan, server, node()),
            "classroom": lambda: bench_classroom(report, plan, server, node()),
            "memory": lambda: bench_memory(report, plan, tmp),
            "fanout": lambda: bench_fanout(report, plan, server),
            "ends": lambda: bench_ends(report, plan, server),
            "sampler": lambda: bench_sampler(report, plan),
        }
        for name in TARGETS:
            if name not in chosen:
                continue
            progress(f"  before {name}: {wait_quiet(args.max_busy, args.quiet_wait)}")
            try:
                steps[name]()
            except Exception as exc:
                traceback.print_exc()
                report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        report.note(f"load average (1/5/15 min) at the end: {load()} on {os.cpu_count()} CPUs "
                    f"(other work on the machine shows here)")
        if server is not None:
            runs = len(server.get_json("/api/runs"))
            report.note(f"shared server: RSS {server_rss(server) / 2**20:.0f} MB after all of the "
                        f"above ({runs} runs held)")
    finally:
        for sink in sinks:
            sink.close()
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report.print(f"bench_stream ({'quick' if plan.quick else 'full'}), "
                 f"{time.perf_counter() - began:.0f} s, {os.cpu_count()} CPUs")
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
