// Knowledge-base suggestions while a customer types on the web form (/support).
// Asks GET /help/suggest as the subject and message change (debounced, only when the words change),
// shows up to three articles under the message box, and counts "this solved my problem" with
// POST /help/{slug}/solved. Without JavaScript the form works exactly as before.
// Text is set with textContent only: titles come from the server but are never parsed as HTML.
(function () {
  "use strict";
  var TEXTS = {
    en: { heading: "These articles may answer your question", solved: "This solved my problem",
          thanks: "Glad it helped! You do not need to send the form." },
    ja: { heading: "こちらの記事で解決できるかもしれません", solved: "これで解決しました",
          thanks: "お役に立ててよかったです。フォームを送信する必要はありません。" }
  };
  var WAIT_MS = 500;
  var MAX_CHARS = 500;

  function start() {
    var message = document.getElementById("message");
    if (!message || !window.fetch) { return; }
    var subject = document.getElementById("subject");
    var lang = (document.documentElement.lang || "en").slice(0, 2);
    var text = TEXTS[lang] || TEXTS.en;
    var box = document.createElement("section");
    box.className = "kb-suggestions";
    box.hidden = true;
    box.setAttribute("aria-live", "polite");
    box.setAttribute("aria-labelledby", "kb-suggestions-title");
    var heading = document.createElement("h2");
    heading.id = "kb-suggestions-title";
    heading.textContent = text.heading;
    var list = document.createElement("ul");
    box.appendChild(heading);
    box.appendChild(list);
    message.insertAdjacentElement("afterend", box);

    var timer = null;
    var lastQuery = "";
    var done = false;

    function query() {
      var words = ((subject ? subject.value : "") + " " + message.value).trim();
      return words.slice(0, MAX_CHARS);
    }

    function solved(slug) {
      fetch("/help/" + encodeURIComponent(slug) + "/solved", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ source: "webform" })
      }).catch(function () { /* counting is best effort; the customer already has the answer */ });
      done = true;
      list.textContent = "";
      var thanks = document.createElement("p");
      thanks.className = "kb-thanks";
      thanks.textContent = text.thanks;
      list.appendChild(thanks);
    }

    function show(articles) {
      list.textContent = "";
      articles.forEach(function (article) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = article.url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = article.title;
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = text.solved;
        button.setAttribute("aria-label", text.solved + ": " + article.title);
        button.addEventListener("click", function () { solved(article.slug); });
        item.appendChild(link);
        item.appendChild(button);
        list.appendChild(item);
      });
      box.hidden = articles.length === 0;
    }

    function ask() {
      var q = query();
      if (done || q === lastQuery) { return; }
      lastQuery = q;
      if (q.length < 2) { show([]); return; }
      var url = "/help/suggest?source=webform&lang=" + encodeURIComponent(lang) + "&q=" + encodeURIComponent(q);
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (data && q === lastQuery && !done) { show(data.articles || []); }
        })
        .catch(function () { /* no suggestions this time; the form still works */ });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(ask, WAIT_MS);
    }

    message.addEventListener("input", later);
    if (subject) { subject.addEventListener("input", later); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
