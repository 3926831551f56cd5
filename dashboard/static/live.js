/* wenzhen team dashboard: local times, confirmations, and live updates over server-sent events.
   The pages work without it; with it, the case list and a case page refresh themselves. */
"use strict";
(function () {
  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      el.title = el.textContent;
      el.textContent = at.toLocaleString([], {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    var button = form.querySelector("button[type=submit]");
    if (button) setTimeout(function () { button.disabled = true; }, 0);  // no double claims
  });

  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });

    var rows = document.getElementById("rows");
    var caseBox = document.getElementById("case-live");
    var badge = document.getElementById("live");
    if ((!rows && !caseBox) || !window.EventSource) return;
    var target = rows || caseBox;
    var url = rows ? rows.dataset.liveRows : caseBox.dataset.liveUrl;
    var labels = { on: "live", reconnecting: "reconnecting…", signedout: "signed out", error: "update failed" };

    function setState(state) {
      if (!badge) return;
      badge.dataset.state = state;
      badge.textContent = labels[state] || state;
    }

    function known() {
      var ids = {};
      target.querySelectorAll("tr[data-case]").forEach(function (tr) { ids[tr.dataset.case] = true; });
      return ids;
    }

    var timer = null;
    function refresh() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.status === 401) { setState("signedout"); return null; }
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          var before = known();
          target.innerHTML = html;
          if (rows) {
            rows.querySelectorAll("tr[data-case]").forEach(function (tr) {
              if (!before[tr.dataset.case]) tr.classList.add("fresh");
            });
          }
          localise(target);
          setState("on");
        })
        .catch(function () { setState("error"); });
    }
    function soon() {
      if (timer !== null) return;
      timer = setTimeout(function () { timer = null; refresh(); }, 150);
    }

    var source = new EventSource("/events");
    source.addEventListener("hello", function () { setState("on"); soon(); });
    source.addEventListener("change", function (event) {
      var change = JSON.parse(event.data);
      if (rows || change.case === caseBox.dataset.liveCase) soon();
    });
    source.addEventListener("signedout", function () { source.close(); setState("signedout"); });
    source.onerror = function () { setState("reconnecting"); };
  });
})();
