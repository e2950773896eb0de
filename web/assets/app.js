// Follows a live run: each event of its stream fetches the part of the
// page that changes and swaps it in; no reload. The stream ends with the
// run; the page then shows its final state.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || live.dataset.live !== "true") { return; }
  var id = live.dataset.run;
  var pending = false, again = false;
  function refresh(done) {
    if (pending) { again = true; return; }
    pending = true;
    fetch("/runs/" + encodeURIComponent(id) + "/live", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var open = {};
        live.querySelectorAll("details[open]").forEach(function (d) { open[d.closest("tr").id] = true; });
        live.innerHTML = html;
        Object.keys(open).forEach(function (row) {
          var d = document.querySelector("#" + row + " details"); if (d) { d.open = true; }
        });
        live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
        if (done) { live.dataset.live = "false"; }
      })
      .catch(function () {})
      .finally(function () { pending = false; if (again) { again = false; refresh(done); } });
  }
  var es = new EventSource("/runs/" + encodeURIComponent(id) + "/events");
  es.onmessage = function () { refresh(false); };
  ["phase", "champion", "run"].forEach(function (k) { es.addEventListener(k, function () { refresh(false); }); });
  es.addEventListener("end", function () { es.close(); refresh(true); });
})();
