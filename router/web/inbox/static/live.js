// Live updates and the collision warning, on every signed-in page (loaded by base.html after htmx and
// its SSE extension, before htmx connects <main sse-connect="/inbox/live">).
//
// 1. The event stream. htmx-ext-sse opens it through htmx.createEventSource; this file wraps that to
//    add `watch=T-1042` for every ticket the page listens to (an `sse:ticket-T-1042` trigger or a
//    `presence-T-1042` swap), so the server sends that ticket's own events, and `after=<id>` when the
//    extension has to open a new stream after a failure: a browser sends Last-Event-ID only when it
//    reconnects by itself, and the page must not miss what happened in between. A `reload` event
//    (the page fell too far behind) reloads it, or shows a notice when the agent has a draft.
//    <body data-live="on|off"> says whether the stream is connected.
// 2. Presence. A ticket page (an element with data-presence-ref) tells the server it is open, every
//    heartbeat_seconds while it stays open, whether its agent is typing in a [data-typing-ref] field,
//    and that it is gone when it closes. The server pushes "Ben is viewing · Chie is typing…" to the
//    other pages on that ticket (presence-T-1042 events).
(function () {
  "use strict";

  var TYPING_IDLE_MS = 5000;      // no keystroke for this long: no longer typing
  var TYPING_REPEAT_MS = 4000;    // while typing, say so again this often (the server forgets after 10 s)
  var lastEventId = null;
  var page = randomId();
  var heartbeatMs = 20000;
  var heartbeatTimer = null;
  var typingSince = 0;
  var typingSent = 0;
  var typingTimer = null;
  var gone = false;

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }

  // ---- the event stream ----------------------------------------------------------------------

  function watchedRefs() {
    var refs = {};
    var names = /(?:ticket|presence)-(T-\d+)/g;
    var elements = document.querySelectorAll("[sse-swap], [data-sse-swap], [hx-trigger], [data-hx-trigger]");
    Array.prototype.forEach.call(elements, function (element) {
      ["sse-swap", "data-sse-swap", "hx-trigger", "data-hx-trigger"].forEach(function (name) {
        var value = element.getAttribute(name) || "";
        var match;
        names.lastIndex = 0;
        while ((match = names.exec(value)) !== null) refs[match[1]] = true;
      });
    });
    return Object.keys(refs);
  }

  function streamUrl(url) {
    var params = watchedRefs().map(function (ref) { return "watch=" + encodeURIComponent(ref); });
    if (lastEventId) params.push("after=" + encodeURIComponent(lastEventId));
    if (!params.length) return url;
    return url + (url.indexOf("?") < 0 ? "?" : "&") + params.join("&");
  }

  function remember(event) {
    if (event.lastEventId) lastEventId = event.lastEventId;
  }

  function hasDraft() {
    var fields = document.querySelectorAll("main textarea, main input[type=text]");
    return Array.prototype.some.call(fields, function (field) {
      return field.value.trim() !== "" && field.value !== field.defaultValue;
    });
  }

  function outOfDate(event) {
    if (!hasDraft()) {
      window.location.reload();
      return;
    }
    var main = document.getElementById("main");
    if (main && !main.querySelector(".live-stale")) main.insertAdjacentHTML("afterbegin", event.data);
  }

  function setConnected(connected) {
    document.body.setAttribute("data-live", connected ? "on" : "off");
  }

  if (window.htmx) {
    window.htmx.createEventSource = function (url) {
      var source = new EventSource(streamUrl(url), {withCredentials: true});
      ["live", "inbox", "agents"].forEach(function (name) { source.addEventListener(name, remember); });
      source.addEventListener("reload", outOfDate);
      return source;
    };
  }
  document.addEventListener("htmx:sseOpen", function () { setConnected(true); });
  document.addEventListener("htmx:sseError", function () { setConnected(false); });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-live-reload]")) window.location.reload();
  });

  // ---- presence -------------------------------------------------------------------------------

  function presenceRef() {
    var element = document.querySelector("[data-presence-ref]");
    return element ? element.getAttribute("data-presence-ref") : null;
  }

  function typingNow() {
    return typingSince > 0;
  }

  function report(state, leaving) {
    var ref = presenceRef();
    if (!ref) return;
    var url = "/inbox/" + encodeURIComponent(ref) + "/presence";
    var body = new URLSearchParams({page: page, state: state, csrf_token: csrfToken()});
    if (leaving && navigator.sendBeacon) {
      navigator.sendBeacon(url, body);
      return;
    }
    fetch(url, {method: "POST", body: body, credentials: "same-origin", keepalive: Boolean(leaving),
                headers: {"X-CSRF-Token": csrfToken()}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && answer.heartbeat_seconds > 0) heartbeatMs = answer.heartbeat_seconds * 1000;
      })
      .catch(function () { /* offline: the next heartbeat tries again */ });
  }

  function heartbeat() {
    window.clearTimeout(heartbeatTimer);
    if (gone || !presenceRef()) return;
    report(typingNow() ? "typing" : "viewing");
    heartbeatTimer = window.setTimeout(heartbeat, heartbeatMs);
  }

  function stopTyping() {
    window.clearTimeout(typingTimer);
    if (!typingNow()) return;
    typingSince = 0;
    heartbeat();
  }

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.closest || !field.closest("[data-typing-ref]")) return;
    if (field.value.trim() === "") {
      stopTyping();
      return;
    }
    var now = Date.now();
    if (!typingNow()) {
      typingSince = now;
      typingSent = 0;
    }
    if (now - typingSent >= TYPING_REPEAT_MS) {
      typingSent = now;
      heartbeat();
    }
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  document.addEventListener("submit", function (event) {
    if (event.target.querySelector && event.target.querySelector("[data-typing-ref]")) stopTyping();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") heartbeat();
  });
  window.addEventListener("pagehide", function () {
    gone = true;
    window.clearTimeout(heartbeatTimer);
    report("left", true);
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {  // back from the back/forward cache: open again
      gone = false;
      heartbeat();
    }
  });
  document.addEventListener("DOMContentLoaded", heartbeat);
})();
