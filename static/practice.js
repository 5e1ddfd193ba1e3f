// Exercises and the editor on a lesson page: "Try it" fills the form for an exercise, and the
// editor keeps this browser's copy of the lesson on the server (saved as you type, a moment
// after you stop), so Run can run it. Everything else is htmx; this is what htmx cannot do.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var pane = $("editor-pane"), editor = null, timer = null, quiet = false;
  // The save in flight, if any. Saves (and Reset) go one at a time, each after the one before has
  // landed: two requests in flight may be handled in either order, and an older copy landing last
  // would be what Run runs while the editor shows the newer one.
  var saving = null;
  var edited = false;  // whether the copy last saved or loaded differs from the lesson
  var url = pane ? "/api/lessons/" + encodeURIComponent(pane.dataset.lesson) + "/scratch" : null;

  function send(method, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.status); return j; });
    });
  }

  function show(copy) {
    edited = copy.edited;
    $("editor-state").textContent = copy.edited ? "your copy: edited and saved" : "your copy: the lesson as it is";
    $("editor-diff-out").textContent = copy.diff || "No changes: your copy is the lesson as it is.";
    var box = $("run-scratch");
    if (box) box.checked = copy.edited;
  }

  // Queue ``request`` (a function returning a promise of the copy) after the save in flight; the
  // promise returned says whether it was kept.
  function inTurn(request) {
    var mine = (saving || Promise.resolve()).then(request).then(function (copy) {
      if (saving === mine && !timer) show(copy);  // a newer save, queued or waiting, shows its own
      return true;
    }, function (e) {
      $("editor-state").textContent = "not saved: " + e.message;
      return false;
    }).then(function (kept) { if (saving === mine) saving = null; return kept; });
    saving = mine;
    return mine;
  }

  function save() {
    clearTimeout(timer);
    timer = null;
    // The text is read when the request goes, not when it is queued: the latest typed is sent.
    return inTurn(function () { return send("PUT", { source: editor.getValue() }); });
  }

  function openEditor() {
    if (!pane) return Promise.resolve();
    pane.hidden = false;
    $("source").hidden = true;
    if (editor) return Promise.resolve();
    return send("GET").then(function (copy) {
      editor = window.ace.edit("editor", {
        mode: "ace/mode/python", useWorker: false, showPrintMargin: false, fontSize: "14px",
        tabSize: 4, useSoftTabs: true
      });
      quiet = true; editor.setValue(copy.source, -1); quiet = false;
      editor.session.getUndoManager().reset();  // undo goes back to what was loaded, no further
      editor.session.on("change", function () {
        if (quiet) return;
        $("editor-state").textContent = "your copy: saving…";
        clearTimeout(timer);
        timer = setTimeout(save, 400);
      });
      show(copy);
    }, function (e) { $("editor-state").textContent = "cannot open your copy: " + e.message; });
  }

  function closeEditor() {
    if (timer) save();
    pane.hidden = true;
    $("source").hidden = false;
  }

  function resetCopy() {
    clearTimeout(timer);
    timer = null;
    inTurn(function () {
      return send("DELETE").then(function (copy) {
        quiet = true; editor.setValue(copy.source, -1); quiet = false;
        return copy;
      });
    });
  }

  // The lesson's defaults, then the card's parameters: the run is the one the card describes. A
  // code-change exercise runs the edited copy, if there is one (reset() would untick the box).
  function fill(form, card) {
    var params = JSON.parse(card.dataset.params || "{}");
    form.reset();
    var box = $("run-scratch");
    if (box) box.checked = card.dataset.edit === "1" && edited;
    Object.keys(params).forEach(function (name) {
      var field = $("p-" + name);
      if (!field) return;
      if (field.type === "checkbox") field.checked = !!params[name];
      else field.value = String(params[name]);
    });
  }

  function tryIt(card) {
    var form = $("run-form");
    fill(form, card);
    var choose = $("run-exercise");
    if (choose) choose.value = card.dataset.n;
    var done = card.dataset.edit === "1" ? openEditor() : Promise.resolve();
    done.then(function () {  // "run my edited copy" follows the copy: ticked once it differs
      if (card.dataset.edit === "1" && edited && !timer && !saving) {  // say what the copy holds
        $("editor-state").textContent = "your copy: edited and saved, with your earlier changes " +
          "(Reset starts again from the lesson)";
      }
      form.scrollIntoView({ block: "nearest" });
      (card.dataset.edit === "1" && editor ? editor : form.querySelector("button[type=submit]")).focus();
    });
  }

  function playLevel(card) {
    var form = $("run-form");
    fill(form, card);
    if ($("run-exercise")) $("run-exercise").value = "";
    $("run-level").value = card.dataset.level;
    $("run-step").checked = true;
    form.scrollIntoView({ block: "nearest" });
    form.querySelector("button[type=submit]").focus();
  }

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (!t.closest) return;
    if (t.closest(".play-level")) playLevel(t.closest(".level-card"));
    else if (t.closest(".try-it")) tryIt(t.closest(".exercise-card"));
    else if (t.closest("#editor-open")) openEditor();
    else if (t.closest("#editor-close")) closeEditor();
    else if (t.closest("#editor-reset")) resetCopy();
    else if (t.closest("#editor-diff")) { var out = $("editor-diff-out"); out.hidden = !out.hidden; }
  });

  // Run with a save still waiting or in flight: let it land, then run what was typed (capture:
  // before htmx sees the submit).
  document.addEventListener("submit", function (e) {
    if (!(timer || saving) || e.target.id !== "run-form") return;
    e.preventDefault();
    e.stopImmediatePropagation();
    // A copy that could not be kept is not run: the state line says why, and the old copy would run.
    (timer ? save() : saving).then(function (kept) { if (kept) e.target.requestSubmit(); });
  }, true);
})();
