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
            lines/s (start → last log event at the client) >= 1.3x websocketd's.
3. latency  at 1,000 events/s, receive time minus the event's ``t``: p99 <= 5 ms. The first
            0.25 s after the socket is connected is skipped (for the server, that is history).
5. memory   a fresh server's RSS (gunicorn master + worker, lessons excluded; psutil, sampled every
            100 ms) through a 1M-line flood with a JSON and a page viewer reading: < 150 MB.
            Baseline: the same server's RSS at rest before the flood.
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

(Target 4, the page's frame gaps, is ``scripts/bench_page.py``.)

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


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, number: str, metric: str, value: str, baseline: str, goal: str,
            ok: bool | None) -> None:
        self.rows.append(Row(number, metric, value, baseline, goal, ok))
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        progress(f"  -> {metric}: {value} (baseline {baseline}; target {goal}) {verdict}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        progress(f"  note: {text}")

    def print(self, title: str) -> None:
        head = ("#", "metric", "threadlab", "baseline", "target", "result")
        cells = [head] + [(r.number, r.metric, r.value, r.baseline, r.goal,
                           "" if r.ok is None else ("PASS" if r.ok else "FAIL")) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        line = "  ".join("-" * w for w in widths)
        print(f"\n{title}")
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


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(True, start_runs=20, flood_count=100_000, flood_reps=2, latency_seconds=3,
                    latency_reps=1, memory_count=300_000, fanout_count=30_000, fanout_reps=1,
                    stall_wait=5, end_runs=100, sampler_pairs=3, sampler_work=4_000_000)
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


def bench_flood(report: Report, plan: Plan, server: LiveServer, data_dir: Path) -> None:
    n = plan.flood_count
    progress(f"[2] flood: {n} lines, {plan.flood_reps} runs each way")
    ours: list[float] = []
    theirs: list[float] = []
    problems: list[str] = []
    messages: list[int] = []
    cpu: list[float] = []
    with websocketd("90_flood.py", "--count", str(n)) as peer:
        for rep in range(plan.flood_reps):
            began = time.perf_counter()
            seen = read_stream(connect(peer), check_seq=False, timeout=60)
            if seen.logs != n:
                problems.append(f"websocketd delivered {seen.logs} of {n}")
            theirs.append(seen.logs / (seen.last_log - began))

            cpu_before = server_cpu(server)
            began = time.perf_counter()
            run_id = server.start("90", count=n)
            seen = read_stream(connect(json_url(server, run_id)), timeout=60)
            elapsed = seen.last_log - began if seen.last_log else math.inf
            cpu.append(server_cpu(server) - cpu_before)
            ours.append(seen.logs / elapsed)
            messages.append(seen.messages)
            server.wait_status(run_id)
            lines = count_lines(data_dir / "runs" / run_id / "events.jsonl")
            if seen.logs != n or not seen.gapless or seen.close_code != 1000 or lines != seen.events:
                problems.append(f"rep {rep}: {seen.logs}/{n} log events, gapless={seen.gapless}, "
                                f"close={seen.close_code or seen.ended}, events.jsonl {lines} lines "
                                f"vs {seen.events} events received")
            progress(f"    rep {rep}: threadlab {ours[-1]:,.0f}/s in {seen.messages} messages; "
                     f"websocketd {theirs[-1]:,.0f}/s")
    rate, base = statistics.median(ours), statistics.median(theirs)
    report.add("2", f"flood {n // 1000}k lines: lines/s", f"{rate:,.0f}/s", f"{base:,.0f}/s websocketd",
               f">= 1.3x ({1.3 * base:,.0f}/s)", rate >= 1.3 * base)
    report.add("2", "flood: every event delivered, gapless, on disk", "yes" if not problems else "NO",
               "-", "all", not problems)
    for text in problems:
        report.note(f"flood: {text}")
    report.note(f"flood: median {statistics.median(messages):,.0f} messages for {n:,} events "
                f"({n / statistics.median(messages):.1f} events/message); server CPU "
                f"{statistics.median(cpu):.2f} s per flood")


def bench_latency(report: Report, plan: Plan, server: LiveServer) -> None:
    secs = plan.latency_seconds
    progress(f"[3] latency: 1000 events/s for {secs} s, {plan.latency_reps} runs each way")
    ours: list[float] = []
    theirs: list[float] = []
    ours_p50: list[float] = []
    with websocketd("92_steady.py", "--rate", "1000", "--seconds", str(secs)) as peer:
        for _ in range(plan.latency_reps):
            ws = connect(peer)
            seen = read_stream(ws, check_seq=False, timeout=30, latency_from=time.time() + 0.25)
            theirs.append(pct(seen.latencies, 99))

            run_id = server.start("92", rate=1000, seconds=secs)
            ws = connect(json_url(server, run_id))
            seen = read_stream(ws, timeout=30, latency_from=time.time() + 0.25)
            if not seen.latencies:
                raise RuntimeError("no log events to time")
            ours.append(pct(seen.latencies, 99))
            ours_p50.append(pct(seen.latencies, 50))
            progress(f"    threadlab p50 {ms(ours_p50[-1])} p99 {ms(ours[-1])} max "
                     f"{ms(max(seen.latencies))} ({len(seen.latencies)} events, "
                     f"{seen.messages} messages); websocketd p99 {ms(theirs[-1])}")
    p99 = statistics.median(ours)
    report.add("3", "latency p99 at 1k events/s", ms(p99), f"{ms(statistics.median(theirs))} websocketd",
               "<= 5 ms", p99 <= 0.005)
    report.note(f"latency: threadlab p50 {ms(statistics.median(ours_p50))}")


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


TARGETS = ("start", "flood", "latency", "memory", "fanout", "ends", "sampler")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller counts")
    parser.add_argument("--only", default=",".join(TARGETS),
                        help=f"comma-separated subset of: {', '.join(TARGETS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    args = parser.parse_args(argv)
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(chosen) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    plan = make_plan(args.quick)
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="threadlab-bench-"))
    began = time.perf_counter()
    progress(f"bench_stream ({'quick' if plan.quick else 'full'}); data in {tmp}; "
             f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; load {load()}")
    ensure_websocketd()
    server: LiveServer | None = None
    try:
        needs_server = [t for t in chosen if t in ("start", "flood", "latency", "fanout", "ends")]
        if needs_server:
            server = start_server(tmp / "shared")
        steps: dict[str, Callable[[], None]] = {
            "start": lambda: bench_start(report, plan, server),
            "flood": lambda: bench_flood(report, plan, server, tmp / "shared"),
            "latency": lambda: bench_latency(report, plan, server),
            "memory": lambda: bench_memory(report, plan, tmp),
            "fanout": lambda: bench_fanout(report, plan, server),
            "ends": lambda: bench_ends(report, plan, server),
            "sampler": lambda: bench_sampler(report, plan),
        }
        for name in TARGETS:
            if name not in chosen:
                continue
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
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report.print(f"bench_stream ({'quick' if plan.quick else 'full'}), "
                 f"{time.perf_counter() - began:.0f} s, {os.cpu_count()} CPUs")
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
