// The few things htmx cannot do for a run's panes. No framework; htmx's own events say when to act.
// 1. The log: bounded (the server counts what is not drawn) and following its end while the reader
//    is at the bottom. Measured in Chromium at 10k lines/s (scripts/bench_page.py): deleting rows
//    one by one and reading scrollHeight after each message cost most of the page's time, hence
//    the Range and the blind scroll.
// 2. Source markers: each thread's current line, marked with its name.
// 3. The timeline: inline SVG (hover says thread, state and time; a click picks that instant).
// 4. The time bar: follow live, or scrub, step (← →), play slowly, and share any instant.
(function () {
  "use strict";
  var TIMELINE_EVERY_MS = 2000; // the SVG is redrawn by the server; more often gains nothing visible
  var scheduled = false, timelineTimer = null, seen = true, visibility = null;
  var moment = null; // the chosen instant in seconds from the run's start; null follows live
  var zoom = null; // [from, to] seconds when the timeline is zoomed in
  var playing = null, fetching = false, wanted = null, meta = {};

  function $(id) { return document.getElementById(id); }
  function live() { return $("live"); }
  function runId() { var l = live(); return l && l.dataset.run; }

  // -- 1. the log ------------------------------------------------------------------------------
  function trimLog() {
    var body = $("log-body"), max = +(live() && live().dataset.maxRows) || 1000;
    if (!body || body.rows.length <= max) return;
    var range = document.createRange(); // one removal, however many rows: no per-row relayout
    range.setStartBefore(body.rows[0]);
    range.setEndBefore(body.rows[body.rows.length - max]);
    range.deleteContents();
  }

  // The log's last row when the log last followed its end: only rows added since move the scroll.
  // Setting scrollTop makes the browser lay out at once; a step's frame that added no row skips it.
  var followedRow = null, ownScroll = false;

  function followLog() {
    var box = $("log-scroll"), body = $("log-body");
    if (!box || !body || box.dataset.follow === "no" || moment !== null) return;
    var last = body.lastElementChild;
    if (last === followedRow) return;
    followedRow = last;
    // The scroll event this causes is ours (we know we are at the end). It comes before the next
    // frame's callbacks, which forget it even when the log did not move and no event came.
    ownScroll = true;
    box.scrollTop = 1e9; // past the end: the end, without reading the height
    requestAnimationFrame(function () { ownScroll = false; });
  }

  // Reading the heights here lays out a log that rows were just added to: done only for the
  // reader's own scrolling, not for the one followLog caused.
  document.addEventListener("scroll", function (e) {
    var box = e.target;
    if (box.id !== "log-scroll") return;
    if (ownScroll) { ownScroll = false; return; }
    box.dataset.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 30 ? "yes" : "no";
  }, true);

  // -- 2. source markers -----------------------------------------------------------------------
  // Each thread's marker, by the thread's name in the table (its lane at a chosen instant). Only
  // markSource changes it. A step moves one thread a line: that marker alone is moved, the others
  // stay in place, so the long source is not re-laid out for markers that did not change.
  var marks = {};

  function markSource() {
    var source = $("source");
    if (!source) return;
    var wanted = {}, body = $(moment === null ? "threads-body" : "moment-body");
    if (body) {
      body.querySelectorAll("tr[data-line]").forEach(function (row) {
        var anchor = row.dataset.line && $("L-" + row.dataset.line), key = row.dataset.thread;
        if (!anchor) return;
        while (wanted[key]) key += "\u0000"; // a name seen twice in the live table: two markers
        wanted[key] = { anchor: anchor, name: row.dataset.thread,
                        cls: "thread-mark " + row.className.replace(/\b(done|crashed)\b/g, "") };
      });
    }
    Object.keys(marks).forEach(function (key) {
      var mark = marks[key], want = wanted[key];
      if (!want || !source.contains(mark) || mark.dataset.anchor !== want.anchor.id) {
        mark.remove();
        delete marks[key];
      }
    });
    Object.keys(wanted).forEach(function (key) {
      var want = wanted[key], mark = marks[key];
      if (!mark) {
        mark = marks[key] = document.createElement("span");
        mark.dataset.anchor = want.anchor.id;
        want.anchor.parentNode.insertBefore(mark, want.anchor.nextSibling);
      }
      if (mark.className !== want.cls) mark.className = want.cls;
      if (mark.textContent !== want.name) mark.textContent = want.name;
    });
  }

  // What one frame after a message does is measured (scripts/bench_page.py, a Chromium trace):
  // anything it changes outside the log's box (contain: strict) makes the browser lay out and paint
  // the whole page, its long source included, instead of the box alone. So the source markers are
  // redrawn only when the thread table changed, and the slider's end moves once a second (and
  // whenever someone reaches for it), not every frame.
  var threadsChanged = true, sliderSynced = 0;
  var SLIDER_EVERY_MS = 1000;

  function afterUpdate() {
    if (scheduled) return;
    scheduled = true;
    // Every change to the document first, the scroll last: setting scrollTop lays the page out at
    // once, and a change after it would make the frame lay it out a second time.
    requestAnimationFrame(function (now) {
      scheduled = false;
      trimLog();
      if (moment === null && threadsChanged) markSource();
      threadsChanged = false;
      if (now - sliderSynced >= SLIDER_EVERY_MS) { sliderSynced = now; syncSlider(); }
      if (moment === null) followLog();
      else if (logPosition !== null) showLogPosition(logPosition);
    });
  }

  var threadsWatch = null;
  function watchThreads() {
    var body = $("threads-body");
    if (threadsWatch) threadsWatch.disconnect();
    if (!body || !window.MutationObserver) return;
    threadsWatch = new MutationObserver(function () { threadsChanged = true; });
    threadsWatch.observe(body, { childList: true });
  }

  // The count of rows not drawn changes with every message; alone in its own box it is laid out
  // by itself, and the page around it stays as it is.
  function isolateCount() {
    var hidden = $("log-hidden");
    if (hidden) {
      hidden.style.display = "inline-block";
      hidden.style.contain = "strict";
      hidden.style.width = "16em"; // room for "12345678 rows not drawn"
      hidden.style.height = "1.3em";
      hidden.style.verticalAlign = "bottom";
      hidden.style.whiteSpace = "nowrap";
    }
  }

  // The log's part of a websocket message is put in place here, not by htmx. A Chromium trace of
  // a 10,000 lines/s run showed htmx spending ~8 ms of script on each message's 200 rows (a class
  // added to and taken off every row, a hidden element added to the document and removed, which
  // makes the browser lay out the whole page) before the browser drew anything. The rows are the
  // server's escaped HTML, the same htmx would insert, and carry no hx- attributes to process.
  // Whatever else the message holds (thread table, status, result...) is left to htmx.
  var LOG_PARTS = /^\s*<hx-partial hx-target="#log-body" hx-swap="(innerHTML|beforeend)">([\s\S]*?)<\/hx-partial>\s*<hx-partial hx-target="#log-hidden" hx-swap="innerHTML">([^<]*)<\/hx-partial>/;

  document.addEventListener("htmx:ws:before:message:incoming", function (e) {
    var message = e.detail && e.detail.message, body = $("log-body"), hidden = $("log-hidden");
    if (!message || typeof message.data !== "string" || !body || !hidden) return;
    var parts = LOG_PARTS.exec(message.data);
    if (!parts) return;
    if (parts[1] === "innerHTML") body.innerHTML = parts[2];
    else body.insertAdjacentHTML("beforeend", parts[2]);
    trimLog(); // now, before the browser lays out rows it would only remove
    var count = parts[3].replace(/&amp;/g, "&");
    if (hidden.textContent !== count) hidden.textContent = count;
    var rest = message.data.slice(parts[0].length);
    if (/\S/.test(rest)) message.data = rest; // htmx reads message.data after this event
    else e.detail.cancelled = true;
    afterUpdate();
  });

  // A websocket message has been swapped in; or a swap brought new panes (Run pressed).
  document.addEventListener("htmx:ws:after:message:incoming", afterUpdate);
  // Set up again only when the panes themselves are new: every websocket message is a swap whose
  // target is #live too, and setting up per message refetched and redrew the timeline 20 times a
  // second (found in a Chromium trace of a 1,000 lines/s run).
  var panes = null;
  document.addEventListener("htmx:after:swap", function () {
    if (live() !== panes) setUp();
    afterUpdate();
  });
  ["pointerdown", "focusin", "keydown"].forEach(function (type) {
    document.addEventListener(type, function (e) {
      if (e.target.closest && e.target.closest("#timebar")) syncSlider();
    }, true);
  });

  document.addEventListener("click", function (e) {
    if (e.target.closest(".close-stacks")) $("stacks").innerHTML = "";
  });

  // -- 3. the timeline ---------------------------------------------------------------------------
  function isLive() {
    var status = $("run-status");
    return !!status && /status-(starting|running|stopping)/.test(status.className);
  }

  function drawTimeline(force) {
    var box = $("timeline");
    if (!box || !box.dataset.src || document.hidden || (!seen && !force)) return;
    var url = box.dataset.src + (zoom ? "?from=" + zoom[0].toFixed(3) + "&to=" + zoom[1].toFixed(3) : "");
    fetch(url, { headers: { Accept: "image/svg+xml" } }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (svg) {
      if (svg === null || $("timeline") !== box) return;
      box.innerHTML = svg; // our server's SVG, every text in it escaped there
      drawCursor();
    });
  }

  function pollTimeline() {
    if (isLive()) drawTimeline(false);
    else if (!$("timeline").dataset.final) { $("timeline").dataset.final = "1"; drawTimeline(true); }
  }

  // Where the timeline puts time t (seconds from the start), as a fraction of its plot's width.
  function timelineX(svg, t) {
    var t0 = +svg.dataset.from, t1 = +svg.dataset.to;
    return t1 > t0 ? (t - t0) / (t1 - t0) : 0;
  }

  function drawCursor() {
    var svg = document.querySelector("#timeline svg[data-from]"), old = $("timeline-cursor");
    if (old) old.remove();
    if (!svg || moment === null) return;
    var x0 = +svg.dataset.x0, x1 = +svg.dataset.x1, f = timelineX(svg, moment);
    if (f < 0 || f > 1) return;
    var ns = "http://www.w3.org/2000/svg", line = document.createElementNS(ns, "line");
    var x = x0 + f * (x1 - x0);
    line.setAttribute("id", "timeline-cursor");
    line.setAttribute("x1", x); line.setAttribute("x2", x);
    line.setAttribute("y1", 0); line.setAttribute("y2", svg.viewBox.baseVal.height || 1000);
    svg.appendChild(line);
  }

  document.addEventListener("click", function (e) {
    var svg = e.target.closest && e.target.closest("#timeline svg[data-from]");
    if (!svg) return;
    var box = svg.getBoundingClientRect(), width = svg.viewBox.baseVal.width || box.width;
    var x = (e.clientX - box.left) * width / box.width, x0 = +svg.dataset.x0, x1 = +svg.dataset.x1;
    if (x < x0 || x > x1) return;
    var t0 = +svg.dataset.from, t1 = +svg.dataset.to;
    choose(t0 + (x - x0) / (x1 - x0) * (t1 - t0));
  });

  document.addEventListener("click", function (e) {
    if (e.target.closest(".tl-zoom-in")) {
      var end = meta.end || +$("timeline").querySelector("svg").dataset.to || 1;
      var centre = moment !== null ? moment : end / 2, span = (zoom ? zoom[1] - zoom[0] : end) / 4;
      zoom = [Math.max(0, centre - span), Math.min(end, centre + span)];
      drawTimeline(true);
    } else if (e.target.closest(".tl-zoom-out")) {
      zoom = null;
      drawTimeline(true);
    }
  });

  // -- 4. the time bar ---------------------------------------------------------------------------
  function bar() { return $("timebar"); }

  // Seconds since the run's start by the server's clock (the page may sit on another machine).
  function elapsed() {
    var b = bar();
    if (!b) return 0;
    if (!isLive()) {
      if (b.dataset.end) return +b.dataset.end; // a run that had ended when the page was drawn
      if (meta.end !== undefined) return meta.end;
      return +b.querySelector(".tb-slider").max; // it ended while we watched: where live got to
    }
    var skew = Date.now() / 1000 - (+b.dataset.now);
    return Math.max(0, Date.now() / 1000 - skew - (+b.dataset.started));
  }

  function syncSlider() {
    var b = bar();
    if (!b) return;
    var slider = b.querySelector(".tb-slider");
    slider.max = Math.max(+slider.max, elapsed()).toFixed(3);
    if (moment === null) slider.value = slider.max;
  }

  function choose(t) {
    var b = bar();
    if (!b) return;
    moment = Math.max(0, Math.min(t, elapsed()));
    live().classList.add("scrubbing");
    b.querySelector(".tb-live").setAttribute("aria-pressed", "false");
    b.querySelector(".tb-slider").value = moment;
    // Events can be a tenth of a millisecond apart: to the microsecond, or stepping would stall.
    b.querySelector(".tb-time").textContent = moment.toFixed(4) + " s";
    b.querySelector(".tb-share").href = "/runs/" + runId() + "?t=" + moment.toFixed(6);
    fetchMoment(moment);
    drawCursor();
  }

  function followLive() {
    moment = null;
    stopPlaying();
    var b = bar();
    live().classList.remove("scrubbing");
    delete live().dataset.shown;
    b.querySelector(".tb-live").setAttribute("aria-pressed", "true");
    b.querySelector(".tb-time").textContent = "live";
    b.querySelector(".tb-share").href = "/runs/" + runId();
    logPosition = null;
    showLogPosition(null);
    followedRow = null; // back at the end of the log, wherever the reader had scrolled
    $("log-scroll").dataset.follow = "yes";
    markSource();
    drawCursor();
    afterUpdate();
  }

  // One request at a time; while it is out, only the latest instant asked for is kept.
  function fetchMoment(t) {
    if (fetching) { wanted = t; return; }
    fetching = true;
    fetch("/runs/" + runId() + "/moment?t=" + t.toFixed(6)).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      fetching = false;
      if (html !== null && moment !== null) showMoment(html);
      if (wanted !== null) { var next = wanted; wanted = null; fetchMoment(next); }
    }, function () { fetching = false; });
  }

  function showMoment(html) {
    var doc = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
    var info = doc.getElementById("moment-meta");
    if (!info) return;
    meta = { prev: info.dataset.prev, next: info.dataset.next, end: +info.dataset.end, logSeq: info.dataset.logSeq };
    $("moment-body").innerHTML = doc.getElementById("moment-rows").innerHTML;
    $("moment-deadlock").innerHTML = doc.getElementById("moment-banner").innerHTML;
    $("moment-label").textContent = info.dataset.label;
    live().dataset.shown = info.dataset.t; // the instant the panes show now (tests wait on it)
    logPosition = meta.logSeq || null;
    showLogPosition(logPosition);
    markSource();
  }

  // The log row of the chosen instant (the last one logged at or before it): marked and scrolled
  // to the middle of the log. Its rows may come after the instant does (a shared moment opens
  // before the websocket has sent the log's history), so each update while scrubbing looks again
  // (afterUpdate), and moves the mark and the scroll only when the row is another one.
  var logPosition = null; // the seq of the chosen instant's row; null when following live

  function showLogPosition(seq) {
    var body = $("log-body"), marked = body && body.querySelector("tr.at-moment"), best = null;
    if (!body) return;
    if (seq) {
      var rows = body.querySelectorAll("tr[data-seq]");
      for (var i = 0; i < rows.length && +rows[i].dataset.seq <= +seq; i++) best = rows[i];
    }
    if (best === marked) return;
    if (marked) marked.classList.remove("at-moment");
    if (!best) return;
    var box = $("log-scroll"), top = best.offsetTop - box.clientHeight / 2; // read, then write
    best.classList.add("at-moment");
    box.dataset.follow = "no";
    box.scrollTop = top;
  }

  function step(direction) {
    var target = direction < 0 ? meta.prev : meta.next;
    if (moment === null) choose(elapsed());
    else if (target !== undefined && target !== "") choose(+target);
  }

  function stopPlaying() {
    if (playing) cancelAnimationFrame(playing);
    playing = null;
    var b = bar();
    if (b) b.querySelector(".tb-play").setAttribute("aria-pressed", "false");
  }

  function play() {
    var b = bar(), speed = +b.querySelector(".tb-speed").value, last = performance.now();
    if (moment === null || moment >= elapsed()) choose(0);
    b.querySelector(".tb-play").setAttribute("aria-pressed", "true");
    function frame(now) {
      var t = moment + (now - last) / 1000 * speed;
      last = now;
      if (t >= elapsed()) { choose(elapsed()); stopPlaying(); return; }
      choose(t);
      playing = requestAnimationFrame(frame);
    }
    playing = requestAnimationFrame(frame);
  }

  document.addEventListener("input", function (e) {
    if (e.target.classList.contains("tb-slider")) { stopPlaying(); choose(+e.target.value); }
  });
  document.addEventListener("click", function (e) {
    if (!e.target.closest("#timebar")) return;
    if (e.target.closest(".tb-live")) followLive();
    else if (e.target.closest(".tb-prev")) { stopPlaying(); step(-1); }
    else if (e.target.closest(".tb-next")) { stopPlaying(); step(1); }
    else if (e.target.closest(".tb-play")) { if (playing) stopPlaying(); else play(); }
  });
  document.addEventListener("keydown", function (e) {
    if (!bar() || e.altKey || e.ctrlKey || e.metaKey) return;
    var field = e.target.closest && e.target.closest("input:not(.tb-slider), select, textarea");
    if (field) return;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      stopPlaying();
      step(e.key === "ArrowLeft" ? -1 : 1);
    }
  });

  // -- setting up a run's panes (on load, and when Run brings new ones) -------------------------
  function setUp() {
    panes = live();
    if (visibility) visibility.disconnect();
    if (timelineTimer) clearInterval(timelineTimer);
    moment = null; zoom = null; meta = {}; seen = true; threadsChanged = true;
    logPosition = null; followedRow = null;
    stopPlaying();
    watchThreads();
    isolateCount();
    var box = $("timeline");
    if (!box || !box.dataset.src) return;
    if (window.IntersectionObserver) {
      visibility = new IntersectionObserver(function (entries) { seen = entries[0].isIntersecting; });
      visibility.observe(box);
    }
    drawTimeline(true);
    timelineTimer = setInterval(pollTimeline, TIMELINE_EVERY_MS);
    syncSlider();
    var at = live().dataset.at;
    if (at !== undefined && bar()) choose(+at); // a shared moment: /runs/<id>?t=1.25
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
