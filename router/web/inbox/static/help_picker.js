// The ticket page's help-article picker (help_picker.html): a click on [data-kb-insert] puts the
// article's "title: URL" into the reply box at the cursor, with ticket.js's insertAtCursor (the
// canned responses use it too; ticket.js runs first: both are deferred, in document order). The search
// itself is htmx (hx-get); without JavaScript the form opens a page of links to copy.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-kb-insert]");
    var field = document.getElementById("reply-text");
    if (!button || !field || !window.ticketPage) return;
    event.preventDefault();
    window.ticketPage.insertAtCursor(field, button.getAttribute("data-kb-insert") || "");
  });
})();
