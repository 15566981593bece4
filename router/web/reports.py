"""Team reports (issue 13 §3): `GET /api/v1/reports/summary`, the page `/reports` and its CSV
exports `/reports/{table}.csv`.

All three read the one `router.core.reports.summary`. The page draws its charts as server-side SVG
(no script, CSP-safe) next to the tables they picture; every table can be downloaded as CSV, UTF-8
with a byte-order mark so Excel (Japanese Windows included) reads Japanese text right.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agents.store import AgentIdentity
from router.core import reports
from router.core.errors import NotFound
from router.core.store import reports as report_store
from router.web.api.auth import authenticate
from router.web.http import services
from router.web.inbox.i18n import register, translate
from router.web.inbox.render import page_language, page_timezone, render, short_duration
from router.web.inbox.session import require_agent

CHANNELS = ("email", "web", "chat", "api", "line", "telegram", "whatsapp", "messenger", "instagram")
TARGET_LABELS = {"first_response": "First reply", "next_response": "Next reply", "resolution": "Resolution"}
BUCKET_LABELS = {"lt_1d": "Under 1 day", "1d_3d": "1–3 days", "3d_7d": "3–7 days", "7d_30d": "7–30 days",
                 "ge_30d": "30 days or more"}

register({
    "Reports": "レポート",
    "Period and filters": "期間と絞り込み",
    "From": "開始日",
    "To": "終了日",
    "Team": "チーム",
    "Channel": "チャネル",
    "Agent": "担当者",
    "All": "すべて",
    "Show": "表示",
    "Tickets created from {first} to {last} ({timezone}). Times are business hours of each ticket's SLA "
    "calendar.":
        "{first} から {last} までに作成されたチケット({timezone})。時間は各チケットの SLA カレンダーの営業時間です。",
    "Download CSV": "CSV をダウンロード",
    "Key figures": "主要指標",
    "Figure": "指標",
    "Value": "値",
    "Tickets created": "作成チケット数",
    "First reply time (median)": "初回返信時間(中央値)",
    "First reply time (90th percentile)": "初回返信時間(90 パーセンタイル)",
    "Resolution time (median)": "解決時間(中央値)",
    "Resolution time (90th percentile)": "解決時間(90 パーセンタイル)",
    "Reopen rate": "再オープン率",
    "Transfers per ticket": "チケットあたりの転送数",
    "CSAT (average of 1–5)": "顧客満足度(1〜5 の平均)",
    "CSAT response rate": "満足度アンケート回答率",
    "NPS": "NPS",
    "Self-service deflection": "セルフサービスでの解決率",
    "SLA compliance": "SLA 達成率",
    "Target": "目標",
    "Decided": "判定済み",
    "Met": "達成",
    "Breached": "超過",
    "Compliance": "達成率",
    "First reply": "初回返信",
    "Next reply": "次回返信",
    "Resolution": "解決",
    "Backlog now": "現在の未解決",
    "Open": "対応中",
    "Pending": "保留中",
    "Age (median)": "経過時間(中央値)",
    "Age (90th percentile)": "経過時間(90 パーセンタイル)",
    "Age": "経過時間",
    "Tickets": "チケット数",
    "Under 1 day": "1 日未満",
    "1–3 days": "1〜3 日",
    "3–7 days": "3〜7 日",
    "7–30 days": "7〜30 日",
    "30 days or more": "30 日以上",
    "Tickets by channel": "チャネル別チケット数",
    "Tickets by topic": "トピック別チケット数",
    "Tickets by language": "言語別チケット数",
    "Tickets by hour of day (customer's time)": "時間帯別チケット数(お客様の現地時刻)",
    "Topic": "トピック",
    "Language": "言語",
    "Hour": "時",
    "First reply (median)": "初回返信(中央値)",
    "None": "なし",
    "Customer satisfaction": "顧客満足度",
    "Score": "スコア",
    "Answers": "回答数",
    "Surveys sent": "送信したアンケート",
    "Surveys answered": "回答されたアンケート",
    "Comments": "コメント",
    "Ticket": "チケット",
    "Comment": "コメント",
    "Answered": "回答日時",
    "No comments in this period.": "この期間のコメントはありません。",
    "Net Promoter Score": "ネット・プロモーター・スコア",
    "Category": "区分",
    "Promoters (9–10)": "推奨者(9〜10)",
    "Passives (7–8)": "中立者(7〜8)",
    "Detractors (0–6)": "批判者(0〜6)",
    "Agents": "担当者",
    "Assigned": "担当",
    "Handled (solved)": "対応済み(解決)",
    "First reply (90th percentile)": "初回返信(90 パーセンタイル)",
    "CSAT": "満足度",
    "Current load": "現在の担当数",
    "Capacity": "上限",
    "Chart: {title}": "グラフ: {title}",
    "Not enough data": "データが不足しています",
    "How these figures are computed": "各指標の算出方法",
})

DEFINITIONS = [
    ("First reply time", "Business time from a ticket's creation to the first agent reply, in the calendar of the "
                         "ticket's SLA policy (wall-clock time for round-the-clock policies)."),
    ("Resolution time", "Business time from creation to the last solve, for tickets solved or closed now."),
    ("SLA compliance", "Share of decided SLA clocks (met, breached, or overdue now) met on time, per target and "
                       "cycle; pending time does not count against a clock."),
    ("Reopen rate", "Tickets reopened by the customer, of the tickets solved at least once."),
    ("Transfers per ticket", "Moves by a person to another agent or back to the queue, per ticket created."),
    ("Backlog", "Open and pending tickets now, whatever the period; age is wall-clock time since creation."),
]
register({
    "First reply time": "初回返信時間",
    "Resolution time": "解決時間",
    "Backlog": "未解決",
    "Business time from a ticket's creation to the first agent reply, in the calendar of the ticket's SLA policy "
    "(wall-clock time for round-the-clock policies).":
        "チケット作成から担当者の最初の返信までの営業時間(チケットの SLA ポリシーのカレンダーで計算。24 時間対応の"
        "ポリシーは経過時間)。",
    "Business time from creation to the last solve, for tickets solved or closed now.":
        "作成から最後の解決までの営業時間(現在解決済みまたはクローズのチケット)。",
    "Share of decided SLA clocks (met, breached, or overdue now) met on time, per target and cycle; pending time "
    "does not count against a clock.":
        "判定済みの SLA 計測(達成・超過・現在期限切れ)のうち期限内に達成した割合(目標とサイクルごと)。保留中の時間は"
        "数えません。",
    "Tickets reopened by the customer, of the tickets solved at least once.":
        "一度でも解決したチケットのうち、お客様の連絡で再オープンしたものの割合。",
    "Moves by a person to another agent or back to the queue, per ticket created.":
        "人による別の担当者またはキューへの移動の回数(作成チケットあたり)。",
    "Open and pending tickets now, whatever the period; age is wall-clock time since creation.":
        "期間に関係なく現在の対応中・保留中のチケット。経過時間は作成からの実時間です。",
})


# ---- shared by the API, the page and the CSV exports ----

async def _summary(request: Request, timezone: str, actor: AgentIdentity) -> reports.Summary:
    svc = services(request)
    params = request.query_params
    today = svc.clock().astimezone(ZoneInfo(timezone)).date()
    span = reports.period(params.get("from"), params.get("to"), timezone, today)
    narrowing = reports.filters(params.get("team"), params.get("channel"), params.get("agent"))
    return await reports.summary(svc.actions(), actor, span, narrowing)


async def summary_api(request: Request) -> Response:
    """`GET /api/v1/reports/summary`: dates are read in the service's timezone."""
    actor = await authenticate(request)
    found = await _summary(request, services(request).config.service.timezone, actor)
    return JSONResponse(found.as_json())


# ---- tables: one definition each, for the page and the CSV ----

Translate = Callable[..., str]
Format = Callable[[float | None], str]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: Callable[[dict[str, Any], Translate, Format], list[list[Any]]]
    """The rows from the summary's JSON, with texts translated and durations formatted as given."""


def _duration(seconds: float | None) -> str:
    """On the page: "1h 05m"."""
    return "" if seconds is None else short_duration(seconds)


def _minutes(seconds: float | None) -> str:
    """In CSV files: minutes, a number a spreadsheet can compute with."""
    return "" if seconds is None else f"{seconds / 60:.1f}"


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"


def _key_rows(data: dict[str, Any], _: Translate, fmt: Format) -> list[list[Any]]:
    tickets, csat, nps, kb = data["tickets"], data["csat"], data["nps"], data["kb"]
    return [
        [_("Tickets created"), tickets["created"]],
        [_("First reply time (median)"), fmt(tickets["first_response"]["median_seconds"])],
        [_("First reply time (90th percentile)"), fmt(tickets["first_response"]["p90_seconds"])],
        [_("Resolution time (median)"), fmt(tickets["resolution"]["median_seconds"])],
        [_("Resolution time (90th percentile)"), fmt(tickets["resolution"]["p90_seconds"])],
        [_("Reopen rate"), _percent(tickets["reopen"]["rate"])],
        [_("Transfers per ticket"), "" if tickets["transfers"]["per_ticket"] is None
         else f"{tickets['transfers']['per_ticket']:.2f}"],
        [_("CSAT (average of 1–5)"), "" if csat["average"] is None else f"{csat['average']:.2f}"],
        [_("CSAT response rate"), _percent(csat["response_rate"])],
        [_("NPS"), "" if nps["score"] is None else f"{nps['score']:.1f}"],
        [_("Self-service deflection"), _percent(kb["deflection_rate"])],
    ]


def _dimension(key: str) -> Callable[[dict[str, Any], Translate, Format], list[list[Any]]]:
    def rows(data: dict[str, Any], _: Translate, fmt: Format) -> list[list[Any]]:
        return [[_plain(item["key"], _), item["tickets"]] for item in data[key]]
    return rows


def _plain(value: Any, _: Translate) -> str:
    return _("None") if value is None else str(value)


TABLES = {table.name: table for table in (
    Table("summary", "Key figures", ("Figure", "Value"), _key_rows),
    Table("sla", "SLA compliance", ("Target", "Decided", "Met", "Breached", "Compliance"),
          lambda d, _, fmt: [[_(TARGET_LABELS[r["target"]]), r["decided"], r["met"], r["breached"],
                         _percent(r["compliance"])] for r in d["sla"]]),
    Table("backlog", "Backlog now", ("Age", "Tickets"),
          lambda d, _, fmt: [[_(BUCKET_LABELS[b["bucket"]]), b["count"]] for b in d["backlog"]["by_age"]]),
    Table("channels", "Tickets by channel", ("Channel", "Tickets"),
          _dimension("by_channel")),
    Table("topics", "Tickets by topic", ("Topic", "Tickets"), _dimension("by_topic")),
    Table("languages", "Tickets by language", ("Language", "Tickets"),
          _dimension("by_language")),
    Table("hours", "Tickets by hour of day (customer's time)", ("Hour", "Tickets"),
          lambda d, _, fmt: [[f"{h['hour']:02d}:00", h["tickets"]] for h in d["by_hour"]]),
    Table("csat", "Customer satisfaction", ("Score", "Answers"),
          lambda d, _, fmt: [[r["score"], r["count"]] for r in d["csat"]["distribution"]]),
    Table("comments", "Comments", ("Ticket", "Score", "Comment", "Agent", "Answered"),
          lambda d, _, fmt: [[f"T-{c['ticket_number']}", c["score"], c["comment"], c["agent"] or "",
                              c["answered_at"] or ""] for c in d["csat"]["comments"]]),
    Table("nps", "Net Promoter Score", ("Category", "Answers"),
          lambda d, _, fmt: [[_("Promoters (9–10)"), d["nps"]["promoters"]],
                             [_("Passives (7–8)"), d["nps"]["passives"]],
                             [_("Detractors (0–6)"), d["nps"]["detractors"]]]),
    Table("agents", "Agents", ("Agent", "Assigned", "Handled (solved)", "First reply (median)",
                               "First reply (90th percentile)", "CSAT", "Current load", "Capacity"),
          lambda d, _, fmt: [[a["name"], a["assigned"], a["handled"], fmt(a["first_response_median_seconds"]),
                              fmt(a["first_response_p90_seconds"]),
                              "" if a["csat_average"] is None else f"{a['csat_average']:.2f}", a["load"],
                              a["capacity"]]
                        for a in d["agents"]]),
)}


# ---- the page ----

@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


CHART_HEIGHT = 120.0
CHART_WIDTH = 600.0


def bars(items: list[tuple[str, int]]) -> list[Bar]:
    """Bar geometry for an SVG chart of `items` (label, value), scaled to the largest value."""
    if not items:
        return []
    top = max(value for _, value in items) or 1
    step = CHART_WIDTH / len(items)
    return [Bar(label, value, round(i * step + step * 0.1, 1), round(CHART_HEIGHT - value / top * CHART_HEIGHT, 1),
                round(step * 0.8, 1), round(value / top * CHART_HEIGHT, 1)) for i, (label, value) in enumerate(items)]


async def reports_page(request: Request) -> Response:
    agent = await require_agent(request)  # `reports.summary` refuses anyone but leads and admins
    zone = page_timezone(request, agent)
    found = await _summary(request, zone.key, agent.identity)
    language = page_language(request, agent)

    def _(text: str, **values: object) -> str:
        return translate(language, text, **values)

    data = found.as_json()
    async with services(request).require_pool().acquire() as conn:
        choices = await report_store.filter_choices(conn)
    query = {k: v for k, v in (("from", found.period.first_day.isoformat()), ("to", found.period.last_day.isoformat()),
                               ("team", found.filters.team), ("channel", found.filters.channel),
                               ("agent", found.filters.agent)) if v}
    tables = {name: {"title": table.title, "columns": table.columns, "rows": table.rows(data, _, _duration),
                     "csv": f"/reports/{name}.csv?{urlencode(query)}"} for name, table in TABLES.items()}
    charts = {
        "hours": bars([(f"{h['hour']:02d}", h["tickets"]) for h in data["by_hour"]]),
        "channels": bars([(_plain(c["key"], _), c["tickets"]) for c in data["by_channel"]]),
        "backlog": bars([(_(BUCKET_LABELS[b["bucket"]]), b["count"]) for b in data["backlog"]["by_age"]]),
    }
    return render(request, agent, "reports.html", {
        "report": data, "tables": tables, "charts": charts, "chart_width": CHART_WIDTH, "chart_height": CHART_HEIGHT,
        "choices": choices, "channels": CHANNELS, "definitions": DEFINITIONS,
        "backlog_age": (_duration(data["backlog"]["age_median_seconds"]),
                        _duration(data["backlog"]["age_p90_seconds"])),
    })


async def reports_csv(request: Request) -> Response:
    agent = await require_agent(request)
    table = TABLES.get(request.path_params["table"])
    if table is None:
        raise NotFound(f"no report table {request.path_params['table']!r}; there are {', '.join(TABLES)}")
    found = await _summary(request, page_timezone(request, agent).key, agent.identity)
    language = page_language(request, agent)

    def _(text: str, **values: object) -> str:
        return translate(language, text, **values)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_(column) for column in table.columns])
    writer.writerows(table.rows(found.as_json(), _, _minutes))
    name = f"{table.name}-{found.period.first_day.isoformat()}-{found.period.last_day.isoformat()}.csv"
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/api/v1/reports/summary", summary_api, methods=["GET"]),
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports/{table}.csv", reports_csv, methods=["GET"]),
]
