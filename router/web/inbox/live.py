"""`/inbox/live`: every signed-in page's Server-Sent Events stream, and the presence heartbeats of
ticket pages (`POST /inbox/{ref}/presence`), which feed the collision warning.

Events a page gets (htmx-ext-sse: `hx-trigger="sse:<name>"` or `sse-swap="<name>"`):
- `inbox` — tickets changed (any ticket event): lists refresh. One per batch, covering every event
  since the previous one, so a busy minute costs a page two chunks a second, not one per event.
  Data: `{"id", "after", "events", "kinds", "refs" (at most 50), "late"}`.
- `ticket-T-1042` — that ticket changed, for the tickets the page watches (`?watch=T-1042`, which
  `live.js` adds for every `sse:ticket-…`/`presence-…` name on the page). Data: `{"id", "ref", "kind",
  "kinds", "events"}`.
- `agents` — an agent's status or profile changed.
- `presence-T-1042` — an HTML fragment, "Ben is viewing · Chie is typing…", in the page's language and
  without the page's own agent; sent when it changes.
- `live` — first message of every stream: `{"id"}` is where the stream starts.
- `reload` — the page missed more than can be replayed: an HTML notice (`live.js` reloads the page,
  or shows the notice when the agent has a draft).

Each batch's last message carries `id:` (the last event id it covers), so a browser that reconnects
sends `Last-Event-ID` and gets exactly what it missed, from the table (`?after=` does the same for a
stream `live.js` had to open anew).
"""

from __future__ import annotations

import functools

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from router.core.actions import presence as presence_actions
from router.core.actions import sessions as session_actions
from router.core.errors import DATABASE_DOWN_ERRORS, LengthRequired, PayloadTooLarge
from router.core.refs import parse_ref, ref
from router.core.store.presence import Viewer
from router.live import RELOAD, Batch, Item, LiveHub, PresenceUpdate, Subscription
from router.web.http import problem, services
from router.web.inbox.i18n import register, translate
from router.web.inbox.live_stream import EventStream, frame, json_frame, retry_hint
from router.web.inbox.render import environment, page_language
from router.web.inbox.session import COOKIE, require_agent, signed_in

MAX_WATCHED = 20
MAX_REFS_LISTED = 50
MAX_PRESENCE_BODY = 4096

register({
    "{name} is viewing": "{name} さんが閲覧中",
    "{name} is typing…": "{name} さんが入力中…",
    "This page missed updates while it was offline.": "オフラインの間にこのページの更新がありました。",
    "Reload": "再読み込み",
})


def watched(request: Request) -> frozenset[int]:
    """The ticket numbers named by `watch` query parameters (`T-1042`), at most `MAX_WATCHED`."""
    numbers = (parse_ref(value) for value in request.query_params.getlist("watch")[:MAX_WATCHED])
    return frozenset(number for number in numbers if number is not None)


def resume_point(request: Request) -> int | None:
    """The last event id the page saw: `Last-Event-ID` (a browser reconnecting by itself), else `after`."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value is not None and value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
    return None


def _ticket_frame(batch: Batch, number: int) -> bytes:
    key = ("ticket", number)
    if key not in batch.encoded:
        rows = batch.by_ticket[number]
        kinds = list(dict.fromkeys(row.kind for row in rows))
        batch.encoded[key] = json_frame(f"ticket-{ref(number)}", {
            "id": rows[-1].id, "ref": ref(number), "kind": rows[-1].kind, "kinds": kinds, "events": len(rows)})
    return batch.encoded[key]


def _common_frames(batch: Batch, with_id: bool) -> bytes:
    """`agents` and `inbox`, the same for every page; with `with_id` the last one carries the batch's id."""
    key = ("common", with_id)
    if key not in batch.encoded:
        messages: list[tuple[str, dict[str, object]]] = []
        agents = [row for row in batch.rows if row.kind == "agent.updated"]
        if agents:
            messages.append(("agents", {"id": agents[-1].id, "events": len(agents), "late": batch.late}))
        tickets = [(row, row.ticket_number) for row in batch.rows if row.ticket_number is not None]
        if tickets:
            refs = list(dict.fromkeys(ref(number) for _, number in reversed(tickets)))[:MAX_REFS_LISTED]
            messages.append(("inbox", {"id": tickets[-1][0].id if batch.late else batch.last, "after": batch.after,
                                       "events": len(tickets), "kinds": sorted({row.kind for row, _ in tickets}),
                                       "refs": refs, "late": batch.late}))
        last = len(messages) - 1
        batch.encoded[key] = b"".join(json_frame(name, data, batch.last if with_id and index == last else None)
                                      for index, (name, data) in enumerate(messages))
    return batch.encoded[key]


def encode_batch(batch: Batch, watch: frozenset[int], *, with_id: bool) -> bytes:
    """The messages of `batch` for a page watching the tickets `watch`; `with_id` for a live batch (a late
    one, or a catch-up followed by `live`, leaves the page's resume point alone)."""
    mine = [number for number in watch if number in batch.by_ticket]
    mine.sort(key=lambda number: batch.by_ticket[number][-1].id)
    return b"".join(_ticket_frame(batch, number) for number in mine) + _common_frames(batch, with_id)


@functools.lru_cache(maxsize=1024)
def presence_fragment(others: tuple[Viewer, ...], language: str) -> str:
    """"Ben is viewing · Chie is typing…" in `language`; empty when nobody else is there."""
    if not others:
        return ""

    def _(text: str, **values: object) -> str:
        return translate(language, text, **values)

    return environment.get_template("_presence.html").render(viewers=others, _=_).strip()


def stale_notice(language: str) -> str:
    return str(Markup('<p class="live-stale" role="alert">{} <button type="button" data-live-reload>{}</button></p>')
               .format(translate(language, "This page missed updates while it was offline."),
                       translate(language, "Reload")))


class PageEncoder:
    """Turns what the follower hands out into the bytes for one page: its agent, language and tickets."""

    def __init__(self, subscription: Subscription, agent_id: int, language: str) -> None:
        self.subscription = subscription
        self.agent_id = agent_id
        self.language = language
        self.shown: dict[int, str] = {}
        """The presence fragment each watched ticket shows now (the page renders it empty)."""

    def __call__(self, item: Item) -> bytes:
        if isinstance(item, Batch):
            batch = self.subscription.visible(item)
            if batch is None:
                return b""
            return encode_batch(batch, self.subscription.watch, with_id=not batch.late)
        if isinstance(item, PresenceUpdate):
            others = tuple(viewer for viewer in item.viewers if viewer.agent_id != self.agent_id)
            html = presence_fragment(others, self.language)
            if self.shown.get(item.number, "") == html:
                return b""
            self.shown[item.number] = html
            return frame(f"presence-{ref(item.number)}", html)
        return b""


async def opening(hub: LiveHub, subscription: Subscription, resume: int | None, language: str) -> bytes:
    """The stream's first chunk: the reconnect delay, what the page missed (or a reload notice), and
    `live` with the id the stream continues from."""
    parts = [retry_hint()]
    missed = await hub.catch_up(subscription, resume)
    if missed == RELOAD:
        parts.append(frame("reload", stale_notice(language)))
    elif isinstance(missed, Batch):
        parts.append(encode_batch(missed, subscription.watch, with_id=False))
    start = max(subscription.start, subscription.floor)
    parts.append(json_frame("live", {"id": start}, start))
    return b"".join(parts)


async def live(request: Request) -> Response:
    """The page's event stream. Signed out: 401 (a browser's EventSource cannot follow a sign-in)."""
    agent = await signed_in(request)
    if agent is None:
        return problem(401, "unauthorized", "sign in to receive live updates",
                       {"WWW-Authenticate": 'Cookie realm="inbox"'})
    svc = services(request)
    language = page_language(request, agent)
    hub = svc.live
    subscription = hub.subscribe(watched(request))
    try:
        first = await opening(hub, subscription, resume_point(request), language)
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    session_id = request.cookies.get(COOKIE, "")

    async def still_signed_in() -> bool:
        try:
            return await session_actions.current(svc.actions(), session_id) is not None
        except DATABASE_DOWN_ERRORS:
            return True  # keep the page live through an outage; the next check decides

    return EventStream(hub, subscription, first, PageEncoder(subscription, agent.agent_id, language),
                       still_signed_in)


async def post_presence(request: Request) -> Response:
    """A ticket page's heartbeat: form fields `page` (its random id) and `state` (viewing, typing, left).
    Answers how often to repeat it."""
    declared = request.headers.get("content-length")
    if declared is None:
        raise LengthRequired("send the presence form with a Content-Length")
    if not declared.isdigit() or int(declared) > MAX_PRESENCE_BODY:
        raise PayloadTooLarge(f"a presence form is at most {MAX_PRESENCE_BODY} bytes")
    agent = await require_agent(request)
    form = await request.form(max_files=0, max_fields=5)
    svc = services(request)
    await presence_actions.report(svc.actions(), agent.identity, request.path_params["ref"],
                                  str(form.get("page") or ""), str(form.get("state") or ""))
    svc.live.presence_changed()
    return JSONResponse({"heartbeat_seconds": int(presence_actions.HEARTBEAT.total_seconds())})


routes: list[BaseRoute] = [
    Route("/inbox/live", live, methods=["GET"]),
    Route("/inbox/{ref}/presence", post_presence, methods=["POST"]),
]
