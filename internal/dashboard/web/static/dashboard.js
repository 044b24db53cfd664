// Ferry dashboard: keeps the live part of a page current. The server watches Promotions with the user's own
// client and names each one that changed in a Server-Sent Event; the page then fetches its server-rendered
// fragment and swaps it in. There is no polling: without events nothing is fetched.
(function () {
  "use strict";

  // After a POST the page is shown under the form's URL; put the page's own URL back so that a reload reads
  // the Promotion instead of sending the form again.
  var canonical = document.body.getAttribute("data-canonical");
  if (canonical && window.history && history.replaceState) {
    history.replaceState(null, "", canonical);
  }

  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live || !window.EventSource) {
    return;
  }
  var fragmentURL = live.getAttribute("data-live-fragment");
  var watching = live.getAttribute("data-watch");
  var fetching = false;
  var again = false;
  var opened = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function concerns(change) {
    return watching === "*" || change.type === "RESYNC" || watching === change.namespace + "/" + change.name;
  }

  // refresh swaps in the fresh fragment, keeping keyboard focus on the same control when it is still there.
  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.id : "";
    fetch(fragmentURL, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (html) {
          if (!response.ok && response.status !== 404) {
            throw new Error("the server answered " + response.status);
          }
          live.innerHTML = html;
          if (focused) {
            var again = document.getElementById(focused);
            if (again) {
              again.focus();
            }
          }
          say("Live: updated at " + new Date().toLocaleTimeString() + ".");
        });
      })
      .catch(function (err) {
        say("Live update failed (" + err.message + "); waiting for the next change.");
      })
      .finally(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource("/events");
  events.addEventListener("open", function () {
    if (opened) {
      refresh(); // reconnected: changes may have been missed meanwhile
    }
    opened = true;
    say("Live: following changes as they happen.");
  });
  events.addEventListener("change", function (event) {
    var change;
    try {
      change = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (change.type === "PROBLEM") {
      say(change.problem);
      return;
    }
    if (concerns(change)) {
      refresh();
    }
  });
  events.addEventListener("error", function () {
    say("Live updates disconnected; reconnecting…");
  });
})();
