// The few things htmx cannot do for the live panes. No framework: one observer, three jobs.
// 1. Keep the log bounded: drop the oldest rows beyond the page's cap (the server counts them).
// 2. Follow the log's end while the reader is at the bottom; leave it alone when they scroll up.
// 3. Mark each live thread's current line in the source view with its name.
// Measured in Chromium at 10k lines/s (scripts/bench_page.py): deleting rows one by one and reading
// scrollHeight after each message cost most of the page's time, hence the Range and the blind scroll.
(function () {
  "use strict";
  var MAX_ROWS = 1000; // keep in step with app/stream.py MAX_LOG_ROWS
  var TIMELINE_EVERY_MS = 2000; // the SVG is redrawn by the server; twice as often gains nothing visible
  var logChanged = false, threadsChanged = false, scheduled = false, timelineSeen = true;
  var watchedTimeline = null; // the #timeline element being watched; a new run's panes bring a new one

  function trimLog() {
    var body = document.getElementById("log-body");
    if (!body || body.rows.length <= MAX_ROWS) return;
    var range = document.createRange(); // one removal, however many rows: no per-row relayout
    range.setStartBefore(body.rows[0]);
    range.setEndBefore(body.rows[body.rows.length - MAX_ROWS]);
    range.deleteContents();
  }

  function followLog() {
    var box = document.getElementById("log-scroll");
    // Assigning past the end scrolls to the end without reading the height (no forced layout).
    if (box && box.dataset.follow !== "no") box.scrollTop = 1e9;
  }

  function markSource() {
    var source = document.getElementById("source");
    if (!source) return;
    source.querySelectorAll(".thread-mark").forEach(function (m) { m.remove(); });
    document.querySelectorAll("#threads-body tr[data-line]").forEach(function (row) {
      var line = row.dataset.line;
      var anchor = line && document.getElementById("L-" + line);
      if (!anchor) return;
      var mark = document.createElement("span");
      mark.className = "thread-mark " + row.className.replace("done", "");
      mark.textContent = row.dataset.thread;
      anchor.parentNode.insertBefore(mark, anchor.nextSibling);
    });
  }

  function refreshTimeline() {
    var img = document.querySelector("#timeline img[data-src]");
    var status = document.getElementById("run-status");
    if (document.getElementById("timeline") !== watchedTimeline) watchTimeline();
    if (!img || !status || document.hidden || !timelineSeen) return;
    var live = /status-(starting|running|stopping)/.test(status.className);
    if (live || !img.dataset.final) {
      img.src = img.dataset.src + "?at=" + Date.now();
      if (!live) img.dataset.final = "1"; // one last drawing after the run ends, then no more
    }
  }

  function update() {
    scheduled = false;
    if (logChanged) { trimLog(); followLog(); }
    if (threadsChanged) markSource();
    logChanged = threadsChanged = false;
  }

  new MutationObserver(function (mutations) {
    mutations.forEach(function (m) {
      var el = m.target;
      if (el.closest && el.closest("#log-body")) logChanged = true;
      if (el.closest && el.closest("#threads-body")) threadsChanged = true;
      if (el.id === "live" || (el.querySelector && el.querySelector("#live"))) logChanged = threadsChanged = true;
    });
    if ((logChanged || threadsChanged) && !scheduled) { scheduled = true; requestAnimationFrame(update); }
  }).observe(document.body, { childList: true, subtree: true });

  document.addEventListener("scroll", function (e) {
    var box = e.target;
    if (box.id === "log-scroll") {
      box.dataset.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 30 ? "yes" : "no";
    }
  }, true);

  function watchTimeline() {
    var timeline = watchedTimeline = document.getElementById("timeline");
    timelineSeen = true;
    if (!timeline || !window.IntersectionObserver) return;
    new IntersectionObserver(function (entries) { timelineSeen = entries[0].isIntersecting; }).observe(timeline);
  }
  watchTimeline();
  setInterval(refreshTimeline, TIMELINE_EVERY_MS);
})();
