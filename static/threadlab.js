// The few things htmx cannot do for the live panes. No framework: one observer, three jobs.
// 1. Keep the log bounded: drop the oldest rows beyond the page's cap (the server counts them).
// 2. Follow the log's end while the reader is at the bottom; leave it alone when they scroll up.
// 3. Mark each live thread's current line in the source view with its name.
(function () {
  "use strict";
  var MAX_ROWS = 1000; // keep in step with app/stream.py MAX_LOG_ROWS
  var scheduled = false;

  function trimLog() {
    var body = document.getElementById("log-body");
    if (!body) return;
    var extra = body.rows.length - MAX_ROWS;
    for (var i = 0; i < extra; i++) body.deleteRow(0);
  }

  function followLog() {
    var box = document.getElementById("log-scroll");
    if (box && box.dataset.follow !== "no") box.scrollTop = box.scrollHeight;
  }

  function markSource() {
    var source = document.getElementById("source");
    var rows = document.querySelectorAll("#threads-body tr[data-line]");
    if (!source) return;
    source.querySelectorAll(".thread-mark").forEach(function (m) { m.remove(); });
    rows.forEach(function (row) {
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
    if (!img || !status) return;
    var live = /status-(starting|running|stopping)/.test(status.className);
    if (live || !img.dataset.final) {
      img.src = img.dataset.src + "?at=" + Date.now();
      if (!live) img.dataset.final = "1";
    }
  }

  function update() {
    scheduled = false;
    trimLog();
    followLog();
    markSource();
  }

  new MutationObserver(function (mutations) {
    var source = document.getElementById("source");
    // Our own marks in the source view change the DOM too; they must not schedule another round.
    var outside = mutations.some(function (m) { return !(source && source.contains(m.target)); });
    if (outside && !scheduled) { scheduled = true; requestAnimationFrame(update); }
  }).observe(document.body, { childList: true, subtree: true });

  document.addEventListener("scroll", function (e) {
    var box = e.target;
    if (box.id === "log-scroll") {
      box.dataset.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 30 ? "yes" : "no";
    }
  }, true);

  setInterval(refreshTimeline, 1000); // the timeline redraws once a second, whatever the event rate
})();
