// The inbox list (/inbox). No inline scripts (CSP): behaviour hangs on data attributes.
//   [data-autosubmit]  a filter form that applies itself when a select changes
//   [data-query]       the current search, shown again in the top bar's search box
// A live refresh replaces the rows; the row selected with j/k (inbox.js) stays selected, and keeps
// the focus when it had it. After "Load more", the focus moves to the first row it loaded.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form && event.target.tagName.toLowerCase() === "select") form.requestSubmit();
  });

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.querySelector("[data-query]");
    var box = document.getElementById("global-search");
    if (page && box && !box.value) box.value = page.getAttribute("data-query");
  });

  var kept = null;
  var loadedBefore = -1;

  function loadingMore(event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    return !!(source && source.classList && source.classList.contains("load-more"));
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "rows") return;
    loadedBefore = loadingMore(event) ? event.detail.target.querySelectorAll("[data-row]").length : -1;
    var selected = event.detail.target.querySelector("[data-row].selected");
    kept = selected ? {
      ref: selected.getAttribute("data-ref"),
      focused: selected.contains(document.activeElement)
    } : null;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "rows") return;
    if (loadedBefore >= 0) {
      var first = event.detail.target.querySelectorAll("[data-row]")[loadedBefore];
      var open = first && first.querySelector("[data-open]");
      if (open) open.focus();
      loadedBefore = -1;
      return;
    }
    if (!kept) return;
    var row = event.detail.target.querySelector('[data-row][data-ref="' + CSS.escape(kept.ref) + '"]');
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
      var link = row.querySelector("[data-open]");
      if (kept.focused && link) link.focus({preventScroll: true});
    }
    kept = null;
  });
})();
