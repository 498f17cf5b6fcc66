// reelfarm monitor: live updates of the server-rendered pages from Server-Sent Events.
// Values are set as text (textContent), never as HTML.
(function () {
  "use strict";
  function setText(root, selector, value) {
    root.querySelectorAll(selector).forEach(function (el) { el.textContent = value; });
  }
  function applyJob(j) {
    document.querySelectorAll('[data-job-id="' + j.id + '"]').forEach(function (el) {
      setText(el, ".state", j.state);
      setText(el, ".frames", j.frames);
      setText(el, ".fps", j.fps);
      setText(el, ".avg", j.avg);
      setText(el, ".eta", j.eta);
      setText(el, ".pct", j.percent + "%");
      el.querySelectorAll(".fill").forEach(function (f) { f.style.width = j.percent + "%"; });
      if (el.tagName === "TR") el.className = "state-" + j.state;
      if (j.terminal) {
        el.querySelectorAll('button[data-action="cancel"], button[data-action="pause"],' +
                            ' button[data-action="resume"]').forEach(function (b) {
          b.closest("form").remove();
        });
      }
    });
    (j.tasks || []).forEach(function (t) {
      document.querySelectorAll('tr[data-task="' + t.index + '"]').forEach(function (row) {
        setText(row, ".task-state", t.state);
        setText(row, ".task-done", String(t.done));
      });
    });
    var n = Number(document.body.dataset.updates || "0") + 1;
    document.body.dataset.updates = String(n);
  }
  function connect() {
    var url = document.body.dataset.events;
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("job", function (e) {
      var j = JSON.parse(e.data);
      applyJob(j);
      // A job page's stream ends with the job; the jobs page's never does.
      if (j.terminal && url.indexOf("?job=") >= 0) source.close();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();

// The job page's task log: "follow" streams the job's log events (and a task's only,
// when one is chosen); lines are appended as text.
(function () {
  "use strict";
  var kMaxLines = 2000;
  function start() {
    var section = document.getElementById("log");
    if (!section || !window.EventSource) return;
    var pre = document.getElementById("log-lines");
    var follow = document.getElementById("log-follow");
    var task = document.getElementById("log-task");
    var status = document.getElementById("log-status");
    var source = null;
    var count = 0;
    function stop() {
      if (source) source.close();
      source = null;
    }
    function open() {
      stop();
      var url = section.dataset.logEvents + "?follow=" + (follow.checked ? "1" : "0");
      if (task.value !== "") url += "&task=" + encodeURIComponent(task.value);
      var s = new EventSource(url);
      source = s;
      // Each (re)connection sends the kept lines from the start: they replace the shown.
      s.addEventListener("open", function () {
        pre.textContent = "";
        count = 0;
        status.textContent = follow.checked ? "following" : "";
      });
      s.addEventListener("log", function (e) {
        var d = JSON.parse(e.data);
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        var text = "";
        d.lines.forEach(function (line) { text += "[task " + d.task + "] " + line + "\n"; });
        pre.appendChild(document.createTextNode(text));
        count += d.lines.length;
        while (count > kMaxLines && pre.firstChild && pre.childNodes.length > 1) {
          count -= (pre.firstChild.textContent.match(/\n/g) || []).length;
          pre.removeChild(pre.firstChild);
        }
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        section.dataset.lines = String(Number(section.dataset.lines || "0") + d.lines.length);
      });
      s.addEventListener("end", function (e) {
        var d = JSON.parse(e.data);
        status.textContent = d.error ? d.error : (follow.checked ? "the job ended" : "");
        s.close();
        if (source === s) source = null;
      });
    }
    follow.addEventListener("change", function () {
      if (follow.checked) open(); else { stop(); status.textContent = ""; }
    });
    task.addEventListener("change", open);
    if (follow.checked) open();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// The before/after wipe: the output over the input, clipped at the divider, which the
// pointer (or the arrow keys) moves; the frame picker loads both frames of another frame.
(function () {
  "use strict";
  function start() {
    var view = document.getElementById("wipe-view");
    if (!view) return;
    var section = document.getElementById("wipe");
    var before = document.getElementById("wipe-before");
    var after = document.getElementById("wipe-after");
    var divider = document.getElementById("wipe-divider");
    var range = document.getElementById("wipe-frame");
    var number = document.getElementById("wipe-frame-number");
    var status = document.getElementById("wipe-status");
    var at = 50;
    function place(pct) {
      at = Math.max(0, Math.min(100, pct));
      after.style.clipPath = "inset(0 0 0 " + at.toFixed(2) + "%)";
      divider.style.left = at.toFixed(2) + "%";
    }
    function fromPointer(e) {
      var r = view.getBoundingClientRect();
      if (r.width > 0) place((e.clientX - r.left) * 100 / r.width);
    }
    var dragging = false;
    view.addEventListener("pointerdown", function (e) {
      dragging = true;
      if (view.setPointerCapture) view.setPointerCapture(e.pointerId);
      fromPointer(e);
      e.preventDefault();
    });
    view.addEventListener("pointermove", function (e) { if (dragging) fromPointer(e); });
    view.addEventListener("pointerup", function () { dragging = false; });
    view.addEventListener("pointercancel", function () { dragging = false; });
    view.addEventListener("keydown", function (e) {
      if (e.key === "ArrowLeft") place(at - 5);
      else if (e.key === "ArrowRight") place(at + 5);
    });
    before.addEventListener("dragstart", function (e) { e.preventDefault(); });
    after.addEventListener("dragstart", function (e) { e.preventDefault(); });
    var pending = 0;
    function loaded() { if (--pending <= 0) status.textContent = ""; }
    function failed(which) {
      return function () {
        pending--;
        status.textContent = which + " frame " + range.value + " is not available (yet)";
      };
    }
    before.addEventListener("load", loaded);
    after.addEventListener("load", loaded);
    before.addEventListener("error", failed("input"));
    after.addEventListener("error", failed("output"));
    function show(frame) {
      var f = Math.round(Number(frame));
      if (!isFinite(f)) return;
      f = Math.max(Number(range.min), Math.min(Number(range.max), f));
      range.value = String(f);
      number.value = String(f);
      pending = 2;
      status.textContent = "loading frame " + f;
      before.src = section.dataset.frames + f + "/input.png";
      after.src = section.dataset.frames + f + "/output.png";
    }
    range.addEventListener("input", function () { number.value = range.value; });
    range.addEventListener("change", function () { show(range.value); });
    number.addEventListener("change", function () { show(number.value); });
    place(50);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
