"""One message of the ticket timeline as HTML (`<li>`), drawn in Python rather than in Jinja.

Why: a ticket page with 200 messages spent two thirds of its time in the Jinja loop that drew them
(every `{{ }}` there is an attribute lookup, an escape and a yield through the layout's generators);
this draws the same markup in about a third of the time (bench/ticket_page_bench.py). Everything else
on the page, system entries included, stays in the templates. Every value from the database goes
through `escape`; the fixed words are translated and escaped once per page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from markupsafe import Markup, escape

from router.core.store.timeline import Attachment, Delivery, Message

FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
"""The email's HTML frame: links may open a new tab (outside the sandbox); no scripts, no same origin,
no forms, no top navigation."""
_WORDS = ("Customer", "claimed, not verified", "Automatic message", "Automatic", "Internal note",
          "Show quoted history", "Show the formatted email", "Formatted email", "Attachments", "inline", "Sent",
          "Not delivered", "unknown reason", "Sending", "Queued",
          "Load remote images (the sender sees that you opened the mail)")


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


class MessageHtml:
    """Draws messages for one page: `ref`, the names of channels and outbound kinds in the page's
    language, its `translate` (`_`) and `local_time`."""

    def __init__(self, ref: str, names: Mapping[str, Mapping[str, str]], translate: Callable[..., str],
                 local_time: Callable[[datetime], str]) -> None:
        self.ref = escape(ref)
        self.channels = names["channels"]
        self.kinds = names["outbound_kinds"]
        self.translate = translate
        self.local_time = local_time
        self.words = {word: escape(translate(word)) for word in _WORDS}

    def channel(self, name: str) -> str:
        return self.channels.get(name, name)

    def __call__(self, m: Message) -> Markup:
        w, i = self.words, m.id
        auto = " auto" if m.auto_kind else ""
        out = [f'<li id="message-{i}" class="entry msg dir-{escape(m.direction)}{auto}" data-entry="message">'
               '<article><header class="msg-head">']
        if m.direction != "note":
            out.append(f'<span class="badge ch ch-{escape(m.channel)}">{escape(self.channel(m.channel))}</span>')
        if m.direction == "in":
            out.append(self._sender(m))
        elif m.direction == "out":
            out.append(self._sent(m))
        elif m.direction == "note":
            out.append(f'<span class="badge note">{w["Internal note"]}</span>'
                       f'<span class="who">{escape(m.author_name or m.sender_name or "")}</span>')
        out.append(f'<time datetime="{m.created_at.isoformat()}">{escape(self.local_time(m.created_at))}</time>'
                   "</header>")
        if m.subject and m.channel == "email":
            out.append(f'<p class="subject">{escape(m.subject)}</p>')
        out.append(f'<div class="body">{escape(m.text)}</div>')
        if m.quoted_text:
            out.append(f'<details class="quoted" id="quoted-{i}"><summary>{w["Show quoted history"]}</summary>'
                       f'<div class="quoted-text">{escape(m.quoted_text)}</div></details>')
        if m.has_html:
            out.append(self._frame(i))
        if m.attachments:
            out.append(self._attachments(m.attachments))
        out.append("</article></li>")
        return Markup("".join(out))

    def _sender(self, m: Message) -> str:
        w = self.words
        out = [f'<span class="who">{escape(m.sender_name or m.sender_address or w["Customer"])}</span>']
        if m.sender_address and m.sender_address != m.sender_name:
            out.append(f'<span class="addr">{escape(m.sender_address)}</span>')
        if m.sender_verified is False:
            out.append(f'<span class="badge claimed">{w["claimed, not verified"]}</span>')
        if m.auto_kind:
            out.append(f'<span class="badge auto">{w["Automatic message"]} ({escape(m.auto_kind)})</span>')
        return "".join(out)

    def _sent(self, m: Message) -> str:
        """Who sent it, the channel it went out on and to whom, and where its delivery stands."""
        to = f" → {escape(m.delivery.to)}" if m.delivery and m.delivery.to else ""
        out = [f'<span class="who">{escape(m.author_name) if m.author_name else self.words["Automatic"]}</span>'
               f'<span class="sent-on">{escape(self.translate("sent on {channel}", channel=self.channel(m.channel)))}'
               f"{to}</span>"]
        if m.kind and m.kind != "reply":
            out.append(f'<span class="badge kind">{escape(self.kinds.get(m.kind, m.kind))}</span>')
        if m.delivery:
            out.append(self._delivery(m.delivery))
        return "".join(out)

    def _delivery(self, d: Delivery) -> str:
        w = self.words
        if d.status == "sent":
            at = f' <time datetime="{d.sent_at.isoformat()}">{escape(self.local_time(d.sent_at))}</time>' \
                if d.sent_at else ""
            return f'<span class="delivery sent">{w["Sent"]}{at}</span>'
        if d.status == "dead":
            reason = escape(d.error) if d.error else w["unknown reason"]
            return f'<span class="delivery dead">{w["Not delivered"]}: {reason}</span>'
        if d.status == "sending":
            return f'<span class="delivery pending">{w["Sending"]}</span>'
        if d.attempts:
            retrying = escape(self.translate("Queued, retrying (attempt {n})", n=d.attempts))
            error = f": {escape(d.error)}" if d.error else ""
            return f'<span class="delivery pending">{retrying}{error}</span>'
        return f'<span class="delivery pending">{w["Queued"]}</span>'

    def _frame(self, message_id: int) -> str:
        """The email's own HTML, only inside a sandboxed frame served with its own CSP (`ticket_files`)."""
        w, src = self.words, f"/inbox/{self.ref}/messages/{message_id}/html"
        return (f'<details class="html-view" id="html-{message_id}"><summary>{w["Show the formatted email"]}'
                f'</summary><div class="frame-box"><iframe name="frame-{message_id}" sandbox="{FRAME_SANDBOX}"'
                f' referrerpolicy="no-referrer" loading="lazy" src="{src}" title="{w["Formatted email"]}"></iframe>'
                f'</div><a class="load-images" href="{src}?images=1" target="frame-{message_id}">'
                f'{w["Load remote images (the sender sees that you opened the mail)"]}</a></details>')

    def _attachments(self, attachments: tuple[Attachment, ...]) -> str:
        w = self.words
        items = "".join(
            f'<li><a href="/inbox/{self.ref}/attachments/{a.id}" download>{escape(a.filename)}</a>'
            f' <span class="meta">{escape(a.content_type)}, {size(a.size)}{", " + w["inline"] if a.inline else ""}'
            "</span></li>" for a in attachments)
        return f'<ul class="attachments" aria-label="{w["Attachments"]}">{items}</ul>'
