/* Live chat widget. Embed: <script src="https://support.example.com/chat/widget.js" defer></script>
 * Plain script, no build step, no eval, no inline styles: it draws inside a shadow root styled by
 * widget.css from the same server, so it works under a strict Content-Security-Policy.
 * Protocol: channels/chat/protocol.py. Every entry has a server number (seq); the widget resumes from
 * the last one it saw, so a reconnect neither loses nor repeats anything. A message stays "sending"
 * (kept in localStorage with its id) until the server confirms it was stored, and is resent with the
 * same id after a reconnect or a reload: the server stores it once. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__routerChat) return;
  window.__routerChat = true;
  var base = (script.getAttribute("data-server") || new URL(script.src, location.href).origin).replace(/\/$/, "");
  var lang = (script.getAttribute("data-lang") || navigator.language || "en").slice(0, 2) === "ja" ? "ja" : "en";
  var TEXT = {
    en: {open: "Chat with us", close: "Close chat", title: "Support chat", message: "Your message", send: "Send",
      sending: "Sending…", sent: "Sent", failed: "Not sent", retry: "Retry", ticket: "Request", due: "Reply expected by",
      joined: " joined the chat", typing: " is typing…", emailLabel: "Get replies by email too",
      sendCode: "Send code", codeSent: "We sent a code to ", codeLabel: "Code", verify: "Verify",
      verified: "Email verified: ", saved: "We noted your address: ", offline: "Reconnecting…",
      suggestions: "These articles may help", solved: "This solved my problem", thanks: "Glad it helped!"},
    ja: {open: "チャットで問い合わせる", close: "チャットを閉じる", title: "サポートチャット", message: "メッセージ",
      send: "送信", sending: "送信中…", sent: "送信済み", failed: "未送信", retry: "再送", ticket: "お問い合わせ番号",
      due: "返信予定", joined: "が参加しました", typing: "が入力中…",
      emailLabel: "メールでも返信を受け取る", sendCode: "コードを送信", codeSent: "確認コードを送信しました: ",
      codeLabel: "確認コード", verify: "確認", verified: "メールアドレスを確認しました: ", saved: "アドレスを承りました: ",
      offline: "再接続しています…", suggestions: "こちらの記事が役立つかもしれません", solved: "これで解決しました",
      thanks: "お役に立てて良かったです"}
  }[lang];
  var COOKIE = "support_chat";
  var PENDING = "support_chat_pending";
  var OPEN = "support_chat_open";

  function readCookie() {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(COOKIE + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(COOKIE.length + 1)) : null;
  }
  function writeCookie(value, maxAge) {
    document.cookie = COOKIE + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge + "; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function loadPending() {
    try { return JSON.parse(localStorage.getItem(PENDING) || "[]"); } catch (e) { return []; }
  }
  function savePending() {
    try { localStorage.setItem(PENDING, JSON.stringify(pending.map(function (p) { return {id: p.id, text: p.text}; }))); }
    catch (e) { /* private mode: pending messages live as long as the page */ }
  }
  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }
  function when(iso) {
    try { return new Intl.DateTimeFormat(lang, {dateStyle: "medium", timeStyle: "short"}).format(new Date(iso)); }
    catch (e) { return iso; }
  }

  // --- the view ---------------------------------------------------------------------------------
  var host = el("div", {id: "support-chat"});
  var root = host.attachShadow({mode: "open"});
  root.appendChild(el("link", {rel: "stylesheet", href: base + "/chat/widget.css"}));
  var launcher = el("button", {type: "button", "class": "launcher", "aria-expanded": "false"}, TEXT.open);
  var panel = el("section", {"class": "panel", "aria-label": TEXT.title, hidden: ""});
  var header = el("header");
  header.appendChild(el("h2", {}, TEXT.title));
  var closer = el("button", {type: "button", "class": "close", "aria-label": TEXT.close}, "×");
  header.appendChild(closer);
  var ticket = el("p", {"class": "ticket", "data-ticket": "", hidden: ""});
  var status = el("p", {"class": "status", role: "status"});
  var log = el("ol", {"class": "log", "aria-live": "polite", "data-log": ""});
  var outbox = el("ol", {"class": "log pending"});
  var typing = el("p", {"class": "typing", "aria-live": "polite"});
  var tips = el("div", {"class": "tips", hidden: ""});
  var form = el("form", {"class": "compose"});
  var inputId = "support-chat-text";
  form.appendChild(el("label", {"for": inputId}, TEXT.message));
  var input = el("textarea", {id: inputId, rows: "2", required: ""});
  form.appendChild(input);
  form.appendChild(el("button", {type: "submit"}, TEXT.send));
  var mail = el("form", {"class": "mail", hidden: ""});
  mail.appendChild(el("label", {"for": "support-chat-email"}, TEXT.emailLabel));
  var mailInput = el("input", {id: "support-chat-email", type: "email", autocomplete: "email", required: ""});
  mail.appendChild(mailInput);
  mail.appendChild(el("button", {type: "submit"}, TEXT.sendCode));
  var codeForm = el("form", {"class": "mail", hidden: ""});
  var codeNote = el("p", {"class": "note"});
  codeForm.appendChild(codeNote);
  codeForm.appendChild(el("label", {"for": "support-chat-code"}, TEXT.codeLabel));
  var codeInput = el("input", {id: "support-chat-code", inputmode: "numeric", autocomplete: "one-time-code", required: ""});
  codeForm.appendChild(codeInput);
  codeForm.appendChild(el("button", {type: "submit"}, TEXT.verify));
  var mailNote = el("p", {"class": "note", hidden: ""});
  [header, ticket, status, log, outbox, typing, tips, form, mail, codeForm, mailNote].forEach(function (n) {
    panel.appendChild(n);
  });
  root.appendChild(launcher);
  root.appendChild(panel);

  function toggle(open) {
    panel.hidden = !open;
    try { localStorage.setItem(OPEN, open ? "1" : ""); } catch (e) { /* remembered for this page only */ }
    launcher.setAttribute("aria-expanded", String(open));
    if (open) { unread = 0; launcher.textContent = TEXT.open; input.focus(); connect(); }
  }
  launcher.addEventListener("click", function () { toggle(panel.hidden); });
  closer.addEventListener("click", function () { toggle(false); launcher.focus(); });

  function bubble(from, text, meta) {
    var item = el("li", {"class": "entry " + from});
    if (from === "agent" && meta.agent) item.appendChild(el("span", {"class": "who"}, meta.agent));
    item.appendChild(el("p", {"class": "text"}, text));
    var state = el("span", {"class": "state"}, meta.state || "");
    item.appendChild(state);
    return item;
  }
  function note(text) {
    var item = el("li", {"class": "entry system"});
    item.appendChild(el("p", {"class": "text"}, text));
    log.appendChild(item);
  }

  // --- state ------------------------------------------------------------------------------------
  var lastSeq = 0;
  var unread = 0;
  var pending = [];
  var seenIds = {};
  var agent;  // undefined until the first state: who had the ticket before this page opened is no news
  var mailDone = false;
  var caughtUp = false;
  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var pingTimer = null;
  var wantOpen = false;

  function showTicket(ref, due) {
    if (!ref) return;
    ticket.hidden = false;
    ticket.textContent = TEXT.ticket + " " + ref + (due ? " · " + TEXT.due + " " + when(due) : "");
    ticket.setAttribute("data-ref", ref);
    mail.hidden = mailDone;
  }
  function addPending(item) {
    item.el = bubble("customer", item.text, {state: TEXT.sending});
    item.el.setAttribute("data-id", item.id);
    outbox.appendChild(item.el);
    pending.push(item);
  }
  function confirmPending(id) {
    pending = pending.filter(function (p) {
      if (p.id !== id) return true;
      if (p.el) p.el.remove();
      return false;
    });
    savePending();
  }
  function entry(frame) {
    if (frame.seq <= lastSeq) return;
    lastSeq = frame.seq;
    if (frame.id) { seenIds[frame.id] = true; confirmPending(frame.id); }
    var item = bubble(frame.from, frame.text, {agent: frame.agent, state: frame.from === "customer" ? TEXT.sent : ""});
    item.setAttribute("data-seq", String(frame.seq));
    log.appendChild(item);
    if (frame.ref) showTicket(frame.ref, frame.due);
    log.scrollTop = log.scrollHeight;
    if (panel.hidden && caughtUp && frame.from !== "customer") launcher.textContent = TEXT.open + " (" + (++unread) + ")";
  }
  function transmit(item) {
    if (ws && ws.readyState === 1 && caughtUp) ws.send(JSON.stringify({type: "message", id: item.id, text: item.text}));
  }
  function markFailed(id, detail, canRetry) {
    pending.forEach(function (p) {
      if (p.id !== id || !p.el) return;
      var state = p.el.querySelector(".state");
      state.textContent = TEXT.failed + (detail ? ": " + detail : "");
      if (!canRetry && !p.el.querySelector("button")) {
        var again = el("button", {type: "button"}, TEXT.retry);
        again.addEventListener("click", function () { state.textContent = TEXT.sending; again.remove(); transmit(p); });
        p.el.appendChild(again);
      }
    });
  }

  function onFrame(event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.type === "welcome") {
      attempt = 0;
      status.textContent = "";
      writeCookie(frame.token, 34560000);
      if (frame.reset) { log.textContent = ""; lastSeq = 0; }
      if (frame.email) { mailDone = true; }
    } else if (frame.type === "entry") {
      entry(frame);
    } else if (frame.type === "state") {
      if (!caughtUp) {
        caughtUp = true;  // the history is in: resend what the server never confirmed, drop what it has
        pending.filter(function (p) { return seenIds[p.id]; }).forEach(function (p) { confirmPending(p.id); });
        pending.forEach(transmit);
      }
      showTicket(frame.ref, frame.due);
      if (frame.agent && agent !== undefined && frame.agent !== agent) note(frame.agent + TEXT.joined);
      agent = frame.agent;
      typing.textContent = frame.typing ? frame.typing + TEXT.typing : "";
    } else if (frame.type === "sent") {
      pending.forEach(function (p) { if (p.id === frame.id && p.el) p.el.querySelector(".state").textContent = TEXT.sent; });
      if (frame.ref) showTicket(frame.ref, null);
    } else if (frame.type === "failed") {
      markFailed(frame.id, frame.retry ? "" : frame.detail, frame.retry);
      if (frame.retry) setTimeout(function () { resend(frame.id); }, 2000);
      else { pending = pending.filter(function (p) { return p.id !== frame.id; }); savePending(); }
    } else if (frame.type === "error") {
      if (frame.code === "rate_limited" && frame.id) {
        markFailed(frame.id, "", true);
        setTimeout(function () { resend(frame.id); }, Math.max(1, frame.retry_after || 3) * 1000);
      } else if (frame.id) {
        markFailed(frame.id, frame.detail, false);
      } else if (frame.code !== "bad_token") {
        mailNote.hidden = false; mailNote.textContent = frame.detail;
      }
    } else if (frame.type === "code_sent") {
      codeNote.textContent = TEXT.codeSent + frame.to;
      codeForm.hidden = false; codeInput.focus();
    } else if (frame.type === "verified" || frame.type === "email_saved") {
      mailDone = true; mail.hidden = true; codeForm.hidden = true;
      mailNote.hidden = false; mailNote.textContent = (frame.type === "verified" ? TEXT.verified : TEXT.saved) + frame.email;
    }
  }
  function resend(id) {
    pending.forEach(function (p) { if (p.id === id) { p.el.querySelector(".state").textContent = TEXT.sending; transmit(p); } });
  }

  // --- the connection ---------------------------------------------------------------------------
  function connect() {
    wantOpen = true;
    if (ws || retryTimer) return;
    var url = base.replace(/^http/, "ws") + "/chat/ws";
    var socket = new WebSocket(url);
    ws = socket;
    caughtUp = false;
    socket.onopen = function () {
      socket.send(JSON.stringify({type: "hello", token: readCookie(), after: lastSeq, lang: lang}));
      clearInterval(pingTimer);
      pingTimer = setInterval(function () {
        if (document.visibilityState === "visible" && socket.readyState === 1) socket.send('{"type":"ping"}');
      }, 25000);
    };
    socket.onmessage = onFrame;
    socket.onclose = function (event) {
      clearInterval(pingTimer);
      if (ws === socket) ws = null;
      if (event.code === 4401) {  // a token we did not sign: start over as a new visitor
        writeCookie("", 0); lastSeq = 0; log.textContent = "";
      }
      if (event.code === 4408 && document.visibilityState !== "visible") return;  // idle: back when visible
      schedule();
    };
  }
  function schedule() {
    if (retryTimer || !wantOpen) return;
    status.textContent = TEXT.offline;
    var ceiling = Math.min(30000, 500 * Math.pow(2, attempt++));
    var delay = ceiling / 2 + Math.random() * ceiling / 2;  // exponential backoff with jitter
    retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
  }
  function wake() {
    if (!wantOpen || ws) return;
    clearTimeout(retryTimer); retryTimer = null; attempt = 0; connect();
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") wake(); });
  window.addEventListener("online", wake);

  // --- sending ----------------------------------------------------------------------------------
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var item = {id: newId(), text: text};
    addPending(item);
    savePending();
    input.value = "";
    tips.hidden = true;
    transmit(item);
    connect();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  mail.addEventListener("submit", function (event) {
    event.preventDefault();
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "email", address: mailInput.value.trim()}));
  });
  codeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "verify", code: codeInput.value.trim()}));
  });

  // --- help articles while typing (nothing shown when the help centre is absent) -------------------
  var tipTimer = null;
  input.addEventListener("input", function () {
    clearTimeout(tipTimer);
    var query = input.value.trim();
    if (query.length < 4) { tips.hidden = true; return; }
    tipTimer = setTimeout(function () {
      fetch(base + "/help/suggest?q=" + encodeURIComponent(query) + "&lang=" + lang)
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(showTips, function () { tips.hidden = true; });
    }, 400);
  });
  function showTips(data) {
    var articles = data && Array.isArray(data.articles) ? data.articles.slice(0, 3) : [];
    tips.textContent = "";
    tips.hidden = articles.length === 0;
    if (!articles.length) return;
    tips.appendChild(el("p", {}, TEXT.suggestions));
    var list = el("ul");
    articles.forEach(function (a) {
      var item = el("li");
      var link = el("a", {href: new URL(a.url, base + "/").href, target: "_blank", rel: "noopener"}, a.title);
      var done = el("button", {type: "button"}, TEXT.solved);
      done.addEventListener("click", function () {
        fetch(base + "/help/" + encodeURIComponent(a.slug) + "/solved", {method: "POST",
          headers: {"Content-Type": "application/json"}, body: JSON.stringify({source: "chat"})})
          .catch(function () { /* a lost thank-you is not worth an error */ });
        tips.textContent = TEXT.thanks;
      });
      item.appendChild(link); item.appendChild(done); list.appendChild(item);
    });
    tips.appendChild(list);
  }

  // --- start ------------------------------------------------------------------------------------
  function start() {
    document.body.appendChild(host);
    loadPending().forEach(function (p) { if (p && p.id && p.text) addPending(p); });
    var wasOpen = false;
    try { wasOpen = localStorage.getItem(OPEN) === "1"; } catch (e) { /* no storage: closed */ }
    if (pending.length || wasOpen || script.hasAttribute("data-open")) toggle(true);
    else if (readCookie()) connect();  // a returning visitor: replies arrive while the panel is closed
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
