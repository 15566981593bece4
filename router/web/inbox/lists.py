"""`/inbox`: the agent's ticket lists — views with counts, filters, search, keyset "Load more".

The page and `GET /api/v1/tickets` read the same store query (`router.core.store.inbox`) through the
same query-string parser (`router.web.listing`). `/inbox/rows` answers the list's rows alone: the
page fetches it for "Load more" and again whenever `/inbox/live` says a ticket changed (the `inbox`
event, at most once a second), re-reading as many rows as the agent has loaded, so a live refresh
never shrinks the list back to its first page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from router.core.channel_rules import channel_name
from router.core.errors import InvalidInput
from router.core.store import inbox
from router.core.store.inbox import VIEWS, View
from router.core.store.sessions import SignedIn
from router.web import listing
from router.web.http import services
from router.web.inbox.i18n import register
from router.web.inbox.render import render
from router.web.inbox.session import require_agent

PAGE_ROWS = 50
MAX_SHOWN = 500
"""A live refresh re-reads at most this many rows (what the agent has loaded with "Load more")."""
CHANNELS = ("email", "web", "chat", "api", "line", "telegram", "whatsapp", "messenger", "instagram")
LANGUAGES = {"ja": "日本語", "en": "English"}

STATUS_LABELS = {"open": "Open", "pending": "Pending", "solved": "Solved", "closed": "Closed"}
PRIORITY_LABELS = {"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent"}

VIEW_TITLES: dict[View, str] = {
    "mine": "Mine",
    "unassigned": "Unassigned",
    "team": "My team",
    "at_risk": "At risk",
    "pending": "Pending",
    "solved": "Solved",
    "all": "All tickets",
}
VIEW_HINTS: dict[View, str] = {
    "mine": "Open and pending tickets assigned to you.",
    "unassigned": "Open and pending tickets waiting in the team queues.",
    "team": "Open and pending tickets of your team.",
    "at_risk": "SLA warned or breached, soonest due first.",
    "pending": "Waiting on the customer.",
    "solved": "Solved, not yet closed.",
    "all": "Every ticket.",
}

register({
    "Mine": "自分の担当",
    "Unassigned": "未割り当て",
    "My team": "チーム",
    "At risk": "SLA 要注意",
    "Pending": "保留中",
    "Solved": "解決済み",
    "All tickets": "すべて",
    "Open and pending tickets assigned to you.": "自分に割り当てられた対応中・保留中のチケット。",
    "Open and pending tickets waiting in the team queues.":
        "チームのキューで担当者を待っている対応中・保留中のチケット。",
    "Open and pending tickets of your team.": "自分のチームの対応中・保留中のチケット。",
    "SLA warned or breached, soonest due first.": "SLA の警告または超過。期限の近い順。",
    "Waiting on the customer.": "お客様からの返信待ち。",
    "Solved, not yet closed.": "解決済み(未クローズ)。",
    "Every ticket.": "すべてのチケット。",
    "Views": "ビュー",
    "Filters": "絞り込み",
    "Status": "ステータス",
    "Channel": "チャネル",
    "Priority": "優先度",
    "Topic": "トピック",
    "Assignee": "担当者",
    "Team": "チーム",
    "Any": "すべて",
    "Nobody (unassigned)": "未割り当て",
    "Apply filters": "絞り込む",
    "Clear filters": "絞り込みを解除",
    "Clear search": "検索を解除",
    "Results for “{query}”": "「{query}」の検索結果",
    "Customer": "お客様",
    "Subject": "件名",
    "SLA": "SLA",
    "Last activity": "最終更新",
    "Load more": "さらに読み込む",
    "Unread": "未読",
    "(no name)": "(名前なし)",
    "(no subject)": "(件名なし)",
    "paused": "一時停止",
    "No tickets here.": "チケットはありません。",
    "No tickets match “{query}”.": "「{query}」に一致するチケットはありません。",
    "Type a word, a reference such as T-1042, an email address or a phone number.":
        "単語、T-1042 のようなチケット番号、メールアドレス、電話番号を入力してください。",
    "Tickets: {count}": "チケット: {count} 件",
    "Tickets: more than {count}": "チケット: {count} 件以上",
    "Open": "対応中",
    "Closed": "クローズ",
    "Low": "低",
    "Normal": "通常",
    "High": "高",
    "Urgent": "緊急",
    "{duration} ago": "{duration}前",
    "first response": "初回応答",
    "next response": "次回応答",
    "resolution": "解決",
    "Showing {shown} tickets": "{shown} 件を表示中",
})


@dataclass(frozen=True)
class ListRequest:
    """What the agent asked for: a view, its filters and search, as parsed and as a query string."""

    view: View
    listing: inbox.Listing
    query: str
    """The filters and search as a query string (without view and paging), for links and `/inbox/rows`."""
    given: dict[str, str]
    """Every filter's value as typed ("" when not given)."""
    shown: int


def _view(request: Request) -> View:
    name = request.query_params.get("view")
    if not name:
        # The search box in the top bar sends only `q`: search every ticket, not just one's own.
        return "all" if request.query_params.get("q", "").strip() else "mine"
    view = next((view for view in VIEWS if view == name), None)
    if view is None:
        raise InvalidInput(f"there is no view {name!r}")
    return view


def _list_request(request: Request, agent: SignedIn) -> ListRequest:
    params = request.query_params
    view = _view(request)
    found = listing.listing(params, view=view, agent_id=agent.agent_id)
    given = {key: params.get(key, "").strip() for key in listing.FILTERS}
    # `shown` is how many rows the page holds: an empty view holds 0 and must still refresh live.
    shown = max(PAGE_ROWS, listing.page_size(params, default=PAGE_ROWS, maximum=MAX_SHOWN, name="shown",
                                             minimum=0))
    return ListRequest(view, found, urlencode({key: value for key, value in given.items() if value}), given, shown)


def _sla_class(row: inbox.Row, now: datetime) -> str:
    """How much of the SLA budget is left: late past due, warn past the policy's warning time."""
    if row.sla_due_at is None or row.sla_paused:
        return "sla-paused"
    if row.sla_due_at <= now:
        return "sla-late"
    if row.sla_warn_at is not None and row.sla_warn_at <= now:
        return "sla-warn"
    return "sla-ok"


def _count_label(count: int) -> str:
    return f"{inbox.COUNT_CAP - 1}+" if count >= inbox.COUNT_CAP else str(count)


def _context(request: Request, wanted: ListRequest, page: inbox.Page, counts: dict[View, int],
             shown: int, *, appending: bool = False) -> dict[str, Any]:
    now = services(request).clock()
    search = wanted.listing.search
    return {
        "view": wanted.view,
        "views": VIEWS,
        "view_titles": VIEW_TITLES,
        "view_hints": VIEW_HINTS,
        "rows": page.rows,
        "sla_class": {row.id: _sla_class(row, now) for row in page.rows},
        "counts": {view: _count_label(count) for view, count in counts.items()},
        "count_capped": {view: count >= inbox.COUNT_CAP for view, count in counts.items()},
        "count_numbers": {view: min(count, inbox.COUNT_CAP - 1) for view, count in counts.items()},
        "next_cursor": listing.encode_cursor(page.next_cursor) if page.next_cursor else None,
        "query": wanted.query,
        "given": wanted.given,
        "q": wanted.given.get("q", ""),
        "search_empty": search is not None and search.empty,
        "shown": shown,
        "appending": appending,
        "channel_name": channel_name,
        "status_labels": STATUS_LABELS,
        "priority_labels": PRIORITY_LABELS,
    }


async def inbox_page(request: Request) -> Response:
    """The inbox: a view's first page of rows, its counts, the filters."""
    agent = await require_agent(request)
    wanted = _list_request(request, agent)
    svc = services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn:
        page = await inbox.page(conn, wanted.listing, now, PAGE_ROWS)
        counts = await inbox.counts(conn, agent.agent_id, now)
        agents, teams = await inbox.filter_choices(conn)
    context = _context(request, wanted, page, counts, len(page.rows))
    context.update(agents=agents, teams=teams, channels=CHANNELS, languages=LANGUAGES,
                   topics=[topic.name for topic in svc.config.topics])
    return render(request, agent, "inbox.html", context)


async def inbox_rows(request: Request) -> Response:
    """Rows only: the next page after `cursor` ("Load more"), or the first `shown` rows again (a live
    refresh), with the view counts and the "Load more" control to swap in beside them."""
    agent = await require_agent(request)
    wanted = _list_request(request, agent)
    svc = services(request)
    more = wanted.listing.after is not None
    now = svc.clock()
    async with svc.require_pool().acquire() as conn:
        page = await inbox.page(conn, wanted.listing, now, PAGE_ROWS if more else wanted.shown)
        counts = await inbox.counts(conn, agent.agent_id, now)
    shown = min(MAX_SHOWN, (wanted.shown if more else 0) + len(page.rows))
    return render(request, agent, "_rows_update.html",
                  _context(request, wanted, page, counts, shown, appending=more), headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/inbox", inbox_page, methods=["GET"]),
    Route("/inbox/rows", inbox_rows, methods=["GET"]),
]
