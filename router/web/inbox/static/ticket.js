// The ticket page (/inbox/T-…). No inline scripts anywhere (CSP): the templates declare what they
// want with data attributes and ids, this file wires it.
//   [data-canned-form]  inserts the chosen canned response (its option's data-text) into #reply-text
//                       at the cursor instead of reloading the page (which is what it does without JS)
//   <details> open in the timeline stay open when the live timeline is swapped in again
//   Ctrl/Cmd+Enter in a ticket textarea sends its form
(function () {
  "use strict";

  var openDetails = new Set();

  function insertAtCursor(field, text) {
    var start = field.selectionStart, end = field.selectionEnd, value = field.value;
    if (typeof start !== "number") { start = end = value.length; }
    var before = value.slice(0, start), after = value.slice(end);
    var glue = before && !before.endsWith("\n") ? "\n" : "";
    field.value = before + glue + text + after;
    var caret = (before + glue + text).length;
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", {bubbles: true}));  // typing indicators notice it
    field.focus();
  }
  // Other parts of the ticket page insert into the reply box the same way (help_picker.js).
  window.ticketPage = {insertAtCursor: insertAtCursor};

  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("[data-canned-form]");
    if (!form) return;
    var select = form.querySelector("select");
    var option = select && select.options[select.selectedIndex];
    var field = document.getElementById("reply-text");
    if (!option || !field) return;  // let the browser do it the JS-free way
    event.preventDefault();
    insertAtCursor(field, option.getAttribute("data-text") || "");
  });

  // `toggle` does not bubble: listen in the capture phase for every details element, now and later.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details.id || !details.closest || !details.closest("#timeline")) return;
    if (details.open) openDetails.add(details.id); else openDetails.delete(details.id);
  }, true);

  function reopen() {
    openDetails.forEach(function (id) {
      var details = document.getElementById(id);
      if (details && !details.open) details.open = true;
    });
  }

  document.addEventListener("htmx:afterSettle", reopen);
  document.addEventListener("htmx:oobAfterSwap", reopen);

  // A form that came back with an error (after a POST, never after a live refresh): focus its field.
  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail && event.detail.requestConfig;
    if (!config || config.verb !== "post") return;
    var invalid = document.querySelector(".ticket-page [aria-invalid=true]");
    if (invalid) invalid.focus();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("ticket-flash");
    if (!flash) return;
    var text = flash.getAttribute("data-refused") || "The server refused the request.";
    var status = event.detail && event.detail.xhr ? " (" + event.detail.xhr.status + ")" : "";
    var line = document.createElement("p");
    line.className = "form-error";
    line.setAttribute("role", "alert");
    line.textContent = text + status;
    flash.replaceChildren(line);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var field = event.target;
    if (!field || field.tagName !== "TEXTAREA" || !field.form || !field.closest(".ticket-page")) return;
    event.preventDefault();
    field.form.requestSubmit();
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (location.hash) return;
    var end = document.getElementById("timeline-end");
    if (end && document.querySelector(".ticket-page")) end.scrollIntoView({block: "end"});
  });
})();
