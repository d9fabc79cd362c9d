/* rpctrace report filters.  Reads data-* attributes through dataset and writes only textContent
   and the hidden attribute: it never parses markup.  The page's Content-Security-Policy allows
   this script by its SHA-256 hash (rpctrace.render.report.content_security_policy), so the hash
   changes whenever this file does. */
(function () {
  "use strict";
  var proc = document.getElementById("f-proc");
  var iface = document.getElementById("f-iface");
  var failed = document.getElementById("f-failed");
  var reset = document.getElementById("f-reset");
  var status = document.getElementById("f-status");
  if (!proc || !iface || !failed || !status) { return; }

  function matches(el, p, i, f) {
    var d = el.dataset;
    if (p && (" " + (d.pids || "") + " ").indexOf(" " + p + " ") < 0) { return false; }
    if (i && d.iface !== i) { return false; }
    if (f && d.failed !== "1") { return false; }
    return true;
  }

  function apply() {
    var p = proc.value, i = iface.value, f = failed.checked;
    var all = document.querySelectorAll(".fc, .fg");
    var k, el, show;
    /* descendants come after their ancestors in document order: walk backwards, so that a
       group (process, thread, timeline row) or a parent call stays visible when something
       inside it does */
    for (k = all.length - 1; k >= 0; k--) {
      el = all[k];
      show = el.classList.contains("fc") && matches(el, p, i, f);
      if (!show) { show = el.querySelector(".fc:not([hidden])") !== null; }
      el.toggleAttribute("hidden", !show);  /* an attribute, so it works on SVG elements too */
    }
    var calls = document.querySelectorAll(".tc");
    var n = 0;
    for (k = 0; k < calls.length; k++) {
      if (matches(calls[k], p, i, f)) { n += 1; }
    }
    var total = parseInt(status.dataset.total || "0", 10);
    var listed = calls.length + " of " + total + " calls listed";
    if (calls.length === total) { listed = "all " + total + " calls listed"; }
    status.textContent = (p || i || f) ? "showing " + n + " (" + listed + ")" : "showing " + listed;
  }

  proc.addEventListener("change", apply);
  iface.addEventListener("change", apply);
  failed.addEventListener("change", apply);
  if (reset) {
    reset.addEventListener("click", function () {
      proc.value = ""; iface.value = ""; failed.checked = false; apply();
    });
  }
  apply();
  document.documentElement.dataset.filters = "ready";
}());
