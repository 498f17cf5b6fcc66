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
