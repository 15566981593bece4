// Inbox keyboard shortcuts and small behaviours. No inline scripts anywhere (CSP): pages declare
// what they want with data attributes and this file wires them up.
//   data-key="r"    pressing r focuses this field, or clicks this button/link
//   data-rows       a list whose [data-row] children j/k move through; Enter opens the row's [data-open]
//   data-help-open  opens the shortcuts dialog (also "?")
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function rows() {
    var list = document.querySelector("[data-rows]");
    return list ? Array.prototype.slice.call(list.querySelectorAll("[data-row]")) : [];
  }

  function select(step) {
    var all = rows();
    if (!all.length) return;
    var current = all.findIndex(function (row) { return row.classList.contains("selected"); });
    var next = current < 0 ? 0 : Math.min(all.length - 1, Math.max(0, current + step));
    all.forEach(function (row) { row.classList.remove("selected"); row.removeAttribute("aria-current"); });
    all[next].classList.add("selected");
    all[next].setAttribute("aria-current", "true");
    var link = all[next].querySelector("[data-open]");
    (link || all[next]).focus();
    all[next].scrollIntoView({block: "nearest"});
  }

  function openSelected() {
    var row = document.querySelector("[data-rows] [data-row].selected");
    var link = row && row.querySelector("[data-open]");
    if (link) { link.click(); return true; }
    return false;
  }

  function help() {
    var dialog = document.getElementById("shortcuts-help");
    if (dialog && !dialog.open) dialog.showModal();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") { event.preventDefault(); help(); return; }
    if (event.key === "j") { event.preventDefault(); select(1); return; }
    if (event.key === "k") { event.preventDefault(); select(-1); return; }
    if (event.key === "Enter" && openSelected()) { event.preventDefault(); return; }
    var target = document.querySelector('[data-key="' + CSS.escape(event.key) + '"]');
    if (!target) return;
    event.preventDefault();
    var tag = target.tagName.toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") {
      var details = target.closest("details");
      if (details) details.open = true;
      target.focus();
    } else {
      target.click();
    }
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-help-open]");
    if (opener) help();
  });
})();
