"""The messages of the ticket timeline as HTML (`<li>`), drawn in Python rather than in Jinja.

Why: a ticket page with 200 messages spent two thirds of its time in the Jinja loop that drew them
(every `{{ }}` there is an attribute lookup, an escape and a yield through the layout's generators).
Here a run of consecutive messages is drawn by one call, and the pieces that repeat from message to
message (channel badges, the sender line, fixed words) are escaped once per page and reused; what
is left per message is its own text, times and ids (bench/ticket_page_bench.py). System entries stay
in the templates. Every value from the database goes through `escape`.

A drawn message is also kept (`_DRAWN`, bounded in characters, the least recently used dropped first),
keyed by everything its HTML depends on: the whole `Message` (text, delivery and receipt included, so
a status change draws it again), the ticket's reference (a merge moves messages), the page's language
and timezone. A ticket page is drawn again
on every change to the ticket (the live refresh) and by every agent who opens it, and all but the
newest messages are the same each time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from router.core.store.timeline import Attachment, Delivery, Message, Receipt, TimelineEntry

FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
"""The email's HTML frame: links may open a new tab (outside the sandbox); no scripts, no same origin,
no forms, no top navigation."""
_WORDS = ("Customer", "claimed, not verified", "Automatic message", "Automatic", "Internal note",
          "Show quoted history", "Show the formatted email", "Formatted email", "Attachments", "inline", "Sent",
          "Not delivered", "unknown reason", "Sending", "Queued", "Delivered", "Read", "Failed",
          "Load remote images (the sender sees that you opened the mail)")


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def local_minutes(value: datetime, zone: ZoneInfo) -> str:
    """`value` in `zone` as "YYYY-MM-DD HH:MM" (what `render`'s `local_time` shows by default, without
    `strftime`, which costs more than the rest of a message's head)."""
    return value.astimezone(zone).replace(tzinfo=None).isoformat(" ", "minutes")


def time_tag(value: datetime | None, zone: ZoneInfo) -> Markup:
    """`<time>` with `value` in `zone` (the templates' `when(value)`); empty for None."""
    if value is None:
        return Markup("")
    return Markup(f'<time datetime="{value.isoformat()}">{local_minutes(value, zone)}</time>')


def runs(entries: Iterable[TimelineEntry]) -> list[list[TimelineEntry]]:
    """`entries` cut into runs of consecutive messages and single system entries, so the template
    makes one call per run of messages instead of one per message."""
    grouped: list[list[TimelineEntry]] = []
    for entry in entries:
        if entry.entry == "message" and grouped and grouped[-1][0].entry == "message":
            grouped[-1].append(entry)
        else:
            grouped.append([entry])
    return grouped


_DRAWN: OrderedDict[tuple[str, str, str, Message], str] = OrderedDict()
DRAWN_BUDGET_CHARS = 4_000_000
"""What the kept drawings may hold in all, counted in characters of their HTML and of the message
texts their keys keep (at most 16 MB even when every string is stored 4 bytes a character); the
least recently drawn go first."""
DRAWN_LARGEST_CHARS = 16_384
"""A message larger than this (pasted logs) is drawn every time: it would crowd out hundreds."""
_drawn_chars = 0


def _cost(message: Message, html: str) -> int:
    return len(html) + len(message.text) + len(message.quoted_text or "")


def _kept(key: tuple[str, str, str, Message]) -> str | None:
    """A kept drawing, marked as the most recently used (the key first kept stays: this page's
    `Message` is freed with the page)."""
    html = _DRAWN.get(key)
    if html is not None:
        _DRAWN.move_to_end(key)
    return html


def _keep(key: tuple[str, str, str, Message], html: str) -> None:
    global _drawn_chars
    cost = _cost(key[3], html)
    if cost > DRAWN_LARGEST_CHARS:
        return
    while _DRAWN and _drawn_chars + cost > DRAWN_BUDGET_CHARS:
        oldest = next(iter(_DRAWN))
        _drawn_chars -= _cost(oldest[3], _DRAWN.pop(oldest))
    _DRAWN[key] = html
    _drawn_chars += cost


class MessageHtml:
    """Draws messages for one page: `ref`, the names of channels and outbound kinds in the page's
    language, its `translate` (`_`) and its `timezone` (times read as `render`'s `local_time` shows
    them: "2026-11-24 09:27")."""

    def __init__(self, ref: str, names: Mapping[str, Mapping[str, str]], translate: Callable[..., str],
                 timezone: str, language: str) -> None:
        self.ref = escape(ref)
        self.page = (ref, language, timezone)
        self.channels = names["channels"]
        self.kinds = names["outbound_kinds"]
        self.translate = translate
        self.zone = ZoneInfo(timezone)
        self.words = {word: escape(translate(word)) for word in _WORDS}
        self._pieces: dict[Hashable, str] = {}
        """Escaped pieces that repeat from message to message, drawn once per page."""

    def channel(self, name: str) -> str:
        return self.channels.get(name, name)

    def local_time(self, value: datetime) -> str:
        return local_minutes(value, self.zone)

    def many(self, messages: Iterable[Message]) -> Markup:
        """A run of messages, one `<li>` each."""
        drawn = []
        for m in messages:
            key = (*self.page, m)
            html = _kept(key)
            if html is None:
                html = self._message(m)
                _keep(key, html)
            drawn.append(html)
        return Markup("".join(drawn))

    def _piece(self, key: Hashable, draw: Callable[[], str]) -> str:
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = draw()
        return piece

    def _message(self, m: Message) -> str:
        w, i = self.words, m.id
        out = [f'<li id="message-{i}', self._piece(("open", m.direction, bool(m.auto_kind), m.channel),
                                                    lambda: self._open(m))]
        if m.direction == "in":
            out.append(self._piece(("in", m.sender_name, m.sender_address, m.sender_verified, m.auto_kind),
                                   lambda: self._sender(m)))
        elif m.direction == "out":
            out.append(self._sent(m))
        elif m.direction == "note":
            out.append(self._piece(("note", m.author_name or m.sender_name or ""),
                                   lambda: f'<span class="badge note">{w["Internal note"]}</span>'
                                           f'<span class="who">{escape(m.author_name or m.sender_name or "")}</span>'))
        out.append(f'<time datetime="{m.created_at.isoformat()}">{self.local_time(m.created_at)}</time></header>')
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
        return "".join(out)

    def _open(self, m: Message) -> str:
        """The message's opening tags after its id, up to its channel badge."""
        auto = " auto" if m.auto_kind else ""
        badge = "" if m.direction == "note" else \
            f'<span class="badge ch ch-{escape(m.channel)}">{escape(self.channel(m.channel))}</span>'
        return (f'" class="entry msg dir-{escape(m.direction)}{auto}" data-entry="message">'
                f'<article><header class="msg-head">{badge}')

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
        to = m.delivery.to if m.delivery else None
        out = [self._piece(("out", m.author_name, m.channel, to, m.kind), lambda: self._sent_by(m, to))]
        if m.delivery:
            out.append(self._delivery(m.delivery))
            if m.delivery.receipt:
                out.append(self._receipt(m.delivery.receipt))
        return "".join(out)

    def _sent_by(self, m: Message, to: str | None) -> str:
        arrow = f" → {escape(to)}" if to else ""
        out = [f'<span class="who">{escape(m.author_name) if m.author_name else self.words["Automatic"]}</span>'
               f'<span class="sent-on">{escape(self.translate("sent on {channel}", channel=self.channel(m.channel)))}'
               f"{arrow}</span>"]
        if m.kind and m.kind != "reply":
            out.append(f'<span class="badge kind">{escape(self.kinds.get(m.kind, m.kind))}</span>')
        return "".join(out)

    def _delivery(self, d: Delivery) -> str:
        w = self.words
        if d.status == "sent":
            at = f' <time datetime="{d.sent_at.isoformat()}">{self.local_time(d.sent_at)}</time>' \
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

    def _receipt(self, r: Receipt) -> str:
        """The platform's latest receipt; a failure after the send is as loud as a dead outbox item."""
        w = self.words
        at = f' <time datetime="{r.at.isoformat()}">{self.local_time(r.at)}</time>'
        if r.status == "failed":
            reason = escape(r.error) if r.error else w["unknown reason"]
            return f'<span class="delivery dead receipt" role="status">{w["Failed"]}: {reason}{at}</span>'
        return f'<span class="delivery sent receipt">{w["Read" if r.status == "read" else "Delivered"]}{at}</span>'

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
