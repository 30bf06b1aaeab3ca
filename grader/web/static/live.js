/* grader live updates (no dependencies, no inline script needed).
 *
 * Leaderboard: an element with data-board-url polls that URL every data-interval seconds (default 5)
 * with fetch(); the answer is an HTML fragment holding <table id="board-table"> (what
 * grader.web.pages.leaderboard_table renders). The table is swapped in place; rows (tr[data-key]) that
 * are new or whose submission changed get the class "changed" for a few seconds. 204/304 = no change.
 *
 * Progress: an element with data-events-url opens an EventSource on it. Each message's data is a JSON
 * object with an "event" field: "state" {state, queue_position, detail}, "phase" {phase},
 * "epoch_start" / "epoch_end" {epoch, epochs, loss, accuracy, val_loss, val_accuracy},
 * "finished" {state} (the page reloads to show the feedback). Named SSE events of the same
 * names work too. Everything from the stream is shown with textContent, never as markup.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function $(root, sel) { return root.querySelector(sel); }
  function say(el, text) { if (el) { el.textContent = text; } }
  function clock() { return new Date().toLocaleTimeString(); }

  /* ---------------------------------------------------------------- leaderboard */
  function rowsOf(table) {
    var map = {};
    table.querySelectorAll("tr[data-key]").forEach(function (tr) {
      map[tr.getAttribute("data-key")] = tr.getAttribute("data-sub") + "|" + tr.getAttribute("data-acc");
    });
    return map;
  }

  function board(holder) {
    var url = holder.getAttribute("data-board-url");
    var every = Math.max(2, parseFloat(holder.getAttribute("data-interval") || "5")) * 1000;
    var status = $(holder, ".live-status") || $(document, ".live-status");
    var delay = every, timer = null, busy = false;

    function schedule(ms) { clearTimeout(timer); timer = setTimeout(poll, ms); }

    function swap(html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("board-table");
      var old = document.getElementById("board-table");
      if (!fresh || !old) { return false; }
      var before = rowsOf(old);
      fresh.querySelectorAll("tr[data-key]").forEach(function (tr) {
        var key = tr.getAttribute("data-key");
        var now = tr.getAttribute("data-sub") + "|" + tr.getAttribute("data-acc");
        if (before[key] !== now) {
          tr.classList.add("changed");
          setTimeout(function () { tr.classList.remove("changed"); }, 8000);
        }
      });
      old.replaceWith(document.adoptNode(fresh));
      return true;
    }

    function poll() {
      if (document.hidden || busy) { schedule(every); return; }
      busy = true;
      fetch(url, { cache: "no-store", credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (resp.status === 204 || resp.status === 304) { return null; }
          if (!resp.ok) { throw new Error("HTTP " + resp.status); }
          return resp.text();
        })
        .then(function (html) {
          if (html !== null && !swap(html)) { throw new Error("no table in the answer"); }
          delay = every;
          say(status, "Live · updated " + clock());
        })
        .catch(function () {
          delay = Math.min(delay * 2, 60000);
          say(status, "Live updates paused (connection problem); retrying in " + Math.round(delay / 1000) + " s");
        })
        .then(function () { busy = false; schedule(delay); });
    }

    say(status, "Live · updates every " + Math.round(every / 1000) + " s");
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { schedule(100); } });
    schedule(every);
  }

  /* ---------------------------------------------------------------- progress */
  function num(x) { return typeof x === "number" && isFinite(x); }
  function cut(s, n) { s = String(s); return s.length > n ? s.slice(0, n) + "…" : s; }

  function progress(holder) {
    var url = holder.getAttribute("data-events-url");
    var bar = $(holder, "progress");
    var state = $(holder, ".live-state");
    var detail = $(holder, ".live-detail");
    var line = $(holder, ".live-epoch");
    var status = $(holder, ".live-status");
    if (!window.EventSource) { say(status, "This browser cannot follow progress; reload the page to update it."); return; }
    var source = new EventSource(url);

    function handle(ev) {
      if (!ev || typeof ev !== "object") { return; }
      switch (ev.event) {
        case "state":
          say(state, cut(ev.state || "", 20));
          holder.setAttribute("data-state", cut(ev.state || "", 20));
          say(detail, num(ev.queue_position) ? "position " + ev.queue_position + " in the queue"
                                            : (ev.detail ? cut(ev.detail, 120) : ""));
          break;
        case "phase":
          say(detail, cut(ev.phase || "", 80));
          break;
        case "epoch_start":
        case "epoch_end":
          if (num(ev.epochs) && ev.epochs > 0) { bar.max = ev.epochs; }
          if (num(ev.epoch)) {
            bar.value = ev.event === "epoch_end" ? ev.epoch : Math.max(0, ev.epoch - 1);
            var text = "Epoch " + ev.epoch + (num(ev.epochs) ? " of " + ev.epochs : "");
            if (ev.event === "epoch_end") {
              if (num(ev.loss)) { text += " · loss " + ev.loss.toFixed(3); }
              if (num(ev.accuracy)) { text += " · accuracy " + (100 * ev.accuracy).toFixed(1) + "%"; }
              if (num(ev.val_accuracy)) { text += " · validation " + (100 * ev.val_accuracy).toFixed(1) + "%"; }
            } else {
              text += "…";
            }
            say(line, text);
          }
          break;
        case "finished":
          source.close();
          say(status, "Finished (" + cut(ev.state || "", 20) + "); loading the feedback…");
          window.location.reload();
          break;
        default:
          break;
      }
    }

    function onMessage(msg) {
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      if (msg.type && msg.type !== "message" && ev && !ev.event) { ev.event = msg.type; }
      handle(ev);
    }

    source.onmessage = onMessage;
    ["state", "phase", "epoch_start", "epoch_end", "finished"].forEach(function (name) {
      source.addEventListener(name, onMessage);
    });
    source.onopen = function () { say(status, "Live"); };
    source.onerror = function () {
      say(status, source.readyState === 2 ? "Live updates stopped; reload the page to see the latest state."
                                          : "Connection lost; reconnecting…");
    };
  }

  function start() {
    document.querySelectorAll("[data-board-url]").forEach(board);
    document.querySelectorAll("[data-events-url]").forEach(progress);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
