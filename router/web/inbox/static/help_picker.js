// The ticket page's help-article picker (help_picker.html): a click on [data-kb-insert] puts the
// article's "title: URL" into the reply box at the cursor, as the canned responses do. The search
// itself is htmx (hx-get); without JavaScript the form opens a page of links to copy.
(function () {
  "use strict";

  function insertAtCursor(field, text) {
    var start = field.selectionStart, end = field.selectionEnd, value = field.value;
    if (typeof start !== "number") { start = end = value.length; }
    var before = value.slice(0, start), after = value.slice(end);
    var glue = before && !before.endsWith("\n") ? "\n" : "";
    field.value = before + glue + text + after;
    var caret = (before + glue + text).length;
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", {bubbles: true}));
    field.focus();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-kb-insert]");
    var field = document.getElementById("reply-text");
    if (!button || !field) return;
    event.preventDefault();
    insertAtCursor(field, button.getAttribute("data-kb-insert") || "");
  });
})();
