"""The report's SQL (issue 13 §3), and the writer of `report_calendar_hours`.

Every figure is an aggregate over rows PostgreSQL already holds; nothing loads tickets into Python.
The cohort is the tickets created in the period (narrowed by team, channel, agent); the backlog is the
open and pending tickets now. Business time is B(b) - B(a) over `report_calendar_hours` (see migration
0017), with wall-clock time for tickets whose policy counts around the clock or that have none.
The statements run in one read-only REPEATABLE READ transaction, so the figures agree with each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from router.core.errors import InvalidInput

TRANSFER = "(r.action = 'transferred' OR (r.action = 'unassigned' AND r.actor_id IS NOT NULL))"
"""A person moved the ticket to another agent or back to the queue (routing's own moves are not
transfers); matches the partial index `routing_log_transfers`."""
AGE_BUCKETS = (("lt_1d", 0, 1), ("1d_3d", 1, 3), ("3d_7d", 3, 7), ("7d_30d", 7, 30), ("ge_30d", 30, None))
"""Backlog age buckets: name, from (days, included), to (days, excluded)."""
AGE_BOUNDS = tuple(low for _, low, _ in AGE_BUCKETS)
TARGETS = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class CalendarHour:
    hour: int
    open_before: float
    starts: list[float]
    ends: list[float]


@dataclass(frozen=True)
class Bounds:
    first: int
    last: int
    open_before_first: float
    open_before_after_last: float


async def calendar_bounds(conn: asyncpg.Connection, key: str) -> Bounds | None:
    row = await conn.fetchrow(
        "SELECT f.hour AS first, f.open_before AS first_before, l.hour AS last,"
        " l.open_before + COALESCE((SELECT sum(e - s) FROM unnest(l.starts, l.ends) AS x(s, e)), 0) AS after_last"
        " FROM (SELECT hour, open_before FROM report_calendar_hours WHERE calendar_key = $1 ORDER BY hour LIMIT 1) f,"
        " (SELECT * FROM report_calendar_hours WHERE calendar_key = $1 ORDER BY hour DESC LIMIT 1) l", key)
    if row is None:
        return None
    return Bounds(row["first"], row["last"], row["first_before"], row["after_last"])


async def lock_calendar(conn: asyncpg.Connection, key: str) -> None:
    """Serialise extending one calendar's rows (transaction-scoped: PgBouncer-safe)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('report_calendar_hours:' || $1, 0))", key)


async def add_calendar_hours(conn: asyncpg.Connection, key: str, rows: Sequence[CalendarHour]) -> None:
    await conn.execute(
        "INSERT INTO report_calendar_hours (calendar_key, hour, open_before, starts, ends)"
        " SELECT $1, hour, open_before, starts::float8[], ends::float8[]"
        " FROM unnest($2::bigint[], $3::float8[], $4::text[], $5::text[]) AS x(hour, open_before, starts, ends)"
        " ON CONFLICT DO NOTHING",
        key, [r.hour for r in rows], [r.open_before for r in rows], [_array(r.starts) for r in rows],
        [_array(r.ends) for r in rows])


def _array(values: list[float]) -> str:
    """A float8[] literal (unnest cannot take an array of arrays of varying length)."""
    return "{" + ",".join(repr(v) for v in values) + "}"


@dataclass(frozen=True)
class Scope:
    team_id: int | None
    agent_id: int | None


async def resolve_scope(conn: asyncpg.Connection, team: str | None, agent: str | None) -> Scope:
    """Team by name, agent by id or email; an unknown one is a 422 (a typo must not read as zero)."""
    team_id = agent_id = None
    if team is not None:
        team_id = await conn.fetchval("SELECT id FROM teams WHERE name = $1", team)
        if team_id is None:
            raise InvalidInput(f"no team named {team!r}")
    if agent is not None:
        if agent.isascii() and agent.isdigit() and len(agent) < 19:
            agent_id = await conn.fetchval("SELECT id FROM agents WHERE id = $1", int(agent))
        else:
            agent_id = await conn.fetchval("SELECT id FROM agents WHERE lower(email) = lower($1)", agent)
        if agent_id is None:
            raise InvalidInput(f"no agent {agent!r}")
    return Scope(team_id, agent_id)


@dataclass(frozen=True)
class Query:
    start: datetime
    end: datetime
    now: datetime
    scope: Scope
    channel: str | None
    policies: Sequence[tuple[str, str | None]]
    """(policy, calendar key or None when it counts wall-clock time)"""
    service_timezone: str
    timezones: Sequence[str]


def _ticket_filter(first: int) -> str:
    """Filters over `tickets t` from parameter `first` on: team id, channel, agent id (the assignee)."""
    team, channel, agent = first, first + 1, first + 2
    return (f"(${team}::bigint IS NULL OR t.team_id = ${team}) AND (${channel}::text IS NULL OR t.channel = ${channel})"
            f" AND (${agent}::bigint IS NULL OR t.assignee_id = ${agent})")


_TICKET_FILTER = _ticket_filter(3)


def _open_before(hour: str, at: str) -> str:
    """B(at): business seconds from the calendar's origin to `at` (epoch seconds), `hour` its hour's row."""
    clamp = "LEAST(GREATEST({at} - {s}, 0), {e} - {s})"
    single = clamp.format(at=at, s=f"{hour}.starts[1]", e=f"{hour}.ends[1]")
    several = clamp.format(at=at, s="x.s", e="x.e")
    return (f"({hour}.open_before + CASE cardinality({hour}.starts) WHEN 0 THEN 0 WHEN 1 THEN {single}"
            f" ELSE (SELECT sum({several}) FROM unnest({hour}.starts, {hour}.ends) AS x(s, e)) END)")


def _business(alias: str, column: str) -> str:
    """Business seconds from the ticket's creation to `column` (epoch seconds; NULL stays NULL)."""
    return (f"CASE WHEN c.{column} IS NULL THEN NULL WHEN c.calendar_key IS NULL THEN c.{column} - c.created"
            f" ELSE {_open_before(alias, 'c.' + column)} - {_open_before('h0', 'c.created')} END")


def _hour_join(alias: str, column: str) -> str:
    return (f" LEFT JOIN report_calendar_hours {alias} ON {alias}.calendar_key = c.calendar_key"
            f" AND {alias}.hour = floor(c.{column} / 3600)::bigint")


_TIMING_SQL = (
    "WITH pol AS (SELECT * FROM unnest($6::text[], $7::text[]) AS p(policy, calendar_key)),"
    " c AS MATERIALIZED ("
    "  SELECT t.assignee_id, date_part('epoch', t.created_at) AS created,"
    "   date_part('epoch', t.first_responded_at) AS responded,"
    "   CASE WHEN t.status IN ('solved', 'closed') THEN date_part('epoch', t.solved_at) END AS resolved,"
    "   t.id IN (SELECT e.ticket_id FROM events e WHERE e.kind = 'ticket.reopened') AS reopened, pol.calendar_key"
    "  FROM tickets t LEFT JOIN pol ON pol.policy = t.sla_policy"
    f"  WHERE t.created_at >= $1 AND t.created_at < $2 AND {_TICKET_FILTER}),"
    " timed AS ("
    f"  SELECT c.*, {_business('h1', 'responded')} AS frt, {_business('h2', 'resolved')} AS resolution"
    "  FROM c" + _hour_join("h0", "created") + _hour_join("h1", "responded") + _hour_join("h2", "resolved") + ")"
    " SELECT GROUPING(assignee_id) AS grouping, assignee_id, count(*) AS tickets,"
    "  count(frt) AS frt_count,"
    "  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY frt) AS frt,"
    "  count(resolution) AS resolved,"
    "  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY resolution) AS resolution,"
    "  count(*) FILTER (WHERE resolved IS NOT NULL OR reopened) AS ever_solved,"
    "  count(*) FILTER (WHERE reopened) AS reopened"
    " FROM timed GROUP BY GROUPING SETS ((), (assignee_id))"
)
"""Timings (medians and p90s) overall and per agent; reopen counts. Kept apart from the plain counts
(`_COUNTS_SQL`): ordered-set aggregates sort each grouping set, counts only hash. The cohort is
MATERIALIZED so each ticket's epoch times are computed once, not at every use in the business-time
arithmetic (`date_part`, not `extract`, which computes in numeric)."""
# GROUPING(assignee_id) is 1 when the column is NOT grouped.
_TIMED_BY = {1: "all", 0: "agent"}

_COUNTS_SQL = (
    "WITH zones AS (SELECT unnest($6::text[]) AS name)"
    " SELECT GROUPING(t.channel, t.topic, t.language, hour) AS grouping, t.channel, t.topic, t.language, hour,"
    " count(*) AS tickets"
    " FROM tickets t LEFT JOIN (SELECT id, timezone FROM customers WHERE timezone IS NOT NULL) cu"
    " ON cu.id = t.customer_id LEFT JOIN zones z ON z.name = cu.timezone"
    " CROSS JOIN LATERAL (SELECT extract(hour FROM t.created_at AT TIME ZONE COALESCE(z.name, $7))::int AS hour) h"
    f" WHERE t.created_at >= $1 AND t.created_at < $2 AND {_TICKET_FILTER}"
    " GROUP BY GROUPING SETS ((t.channel), (t.topic), (t.language), (hour))"
)
"""Tickets by channel, topic, language and hour of day in the customer's timezone (a stored zone this
machine does not know counts as the service's)."""
_COUNTED_BY = {0b0111: "channel", 0b1011: "topic", 0b1101: "language", 0b1110: "hour"}

_TRANSFERS_SQL = (
    f"SELECT count(*) FROM routing_log r JOIN tickets t ON t.id = r.ticket_id WHERE {TRANSFER}"
    f" AND t.created_at >= $1 AND t.created_at < $2 AND {_TICKET_FILTER}"
)

_SLA_SQL = (
    "SELECT s.target,"
    " sum(s.cycle - 1 + CASE WHEN s.met_at IS NOT NULL OR late THEN 1 ELSE 0 END)::bigint AS decided,"
    " sum(late::int + CASE WHEN s.cycle > 1 THEN (SELECT count(*) FROM sla_events e WHERE e.ticket_id = s.ticket_id"
    "  AND e.target = s.target AND e.kind = 'breach' AND e.cycle < s.cycle) ELSE 0 END)::bigint AS breached"
    " FROM tickets t CROSS JOIN LATERAL (SELECT * FROM sla_targets x WHERE x.ticket_id = t.id OFFSET 0) s"
    " CROSS JOIN LATERAL (SELECT s.breached_at IS NOT NULL OR COALESCE(s.met_at > s.due_at, false)"
    "  OR (s.met_at IS NULL AND s.paused_at IS NULL AND s.due_at <= $6) AS late) b"
    f" WHERE t.created_at >= $1 AND t.created_at < $2 AND {_TICKET_FILTER}"
    " GROUP BY s.target"
)
"""The cohort's clocks through their primary key (`OFFSET 0` keeps the planner from hashing the whole
`sla_targets` table, which holds every ticket ever)."""

_BACKLOG_SQL = (
    "SELECT count(*) AS total, count(*) FILTER (WHERE t.status = 'open') AS open,"
    " count(*) FILTER (WHERE t.status = 'pending') AS pending,"
    " percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY t.created_at DESC) AS created,"
    " min(t.created_at) AS oldest, "
    + ", ".join(f"count(*) FILTER (WHERE t.created_at <= ${4 + index}"
                + (f" AND t.created_at > ${4 + AGE_BOUNDS.index(high)})" if high else ")")
                + f" AS \"{name}\"" for index, (name, low, high) in enumerate(AGE_BUCKETS))
    + f" FROM tickets t WHERE t.status IN ('open', 'pending') AND {_ticket_filter(1)}"
)
"""The backlog is now, whatever the period ($1-$3 the filters, then the creation time at each age
bound in `AGE_BOUNDS`: computed once by the caller, as `now - interval` per row and bucket was most of
this statement's cost); age percentiles are those of the creation times (nearest rank), which sorts
timestamps instead of computing an age per ticket."""

_LOAD_SQL = (
    "SELECT t.assignee_id, count(*) AS load FROM tickets t WHERE t.status IN ('open', 'pending')"
    f" AND t.assignee_id IS NOT NULL AND {_ticket_filter(1)} GROUP BY t.assignee_id"
)

_CSAT_SQL = (
    "SELECT GROUPING(r.agent_id) AS grouping, r.agent_id, count(*) AS sent,"
    " count(r.score) AS answered, avg(r.score)::float AS average,"
    + ", ".join(f"count(*) FILTER (WHERE r.score = {n}) AS score_{n}" for n in range(1, 6))
    + " FROM csat_responses r JOIN tickets t ON t.id = r.ticket_id"
    " WHERE r.kind = 'csat' AND r.sent_at >= $1 AND r.sent_at < $2"
    " AND ($3::bigint IS NULL OR t.team_id = $3) AND ($4::text IS NULL OR t.channel = $4)"
    " AND ($5::bigint IS NULL OR r.agent_id = $5)"
    " GROUP BY GROUPING SETS ((), (r.agent_id))"
)
_COMMENTS_SQL = (
    "SELECT t.number, r.score, r.comment, r.answered_at, a.name AS agent"
    " FROM csat_responses r JOIN tickets t ON t.id = r.ticket_id LEFT JOIN agents a ON a.id = r.agent_id"
    " WHERE r.kind = 'csat' AND r.sent_at >= $1 AND r.sent_at < $2 AND r.comment IS NOT NULL AND r.comment <> ''"
    " AND ($3::bigint IS NULL OR t.team_id = $3) AND ($4::text IS NULL OR t.channel = $4)"
    " AND ($5::bigint IS NULL OR r.agent_id = $5)"
    " ORDER BY r.answered_at DESC NULLS LAST, r.id DESC LIMIT 100"
)
_NPS_SQL = (
    "SELECT count(*) AS sent, count(score) AS answered, count(*) FILTER (WHERE score >= 9) AS promoters,"
    " count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives, count(*) FILTER (WHERE score <= 6) AS detractors"
    " FROM csat_responses WHERE kind = 'nps' AND sent_at >= $1 AND sent_at < $2"
)
_KB_SQL = (
    "SELECT (SELECT COALESCE(sum(shown), 0) FROM kb_shown WHERE day >= ($1 AT TIME ZONE 'UTC')::date"
    "  AND day < ($2 AT TIME ZONE 'UTC')::date)::bigint AS shown,"
    " (SELECT count(*) FROM kb_feedback WHERE solved AND created_at >= $1 AND created_at < $2) AS solved"
)
"""Suggestions are counted per UTC day (`kb_shown`), so the period's days are read as UTC days."""
_AGENTS_SQL = (
    "SELECT a.id, a.name, a.email, a.role, a.status, a.capacity FROM agents a"
    " WHERE a.active AND ($1::bigint IS NULL OR a.team_id = $1) AND ($2::bigint IS NULL OR a.id = $2)"
    " ORDER BY a.name, a.id"
)


SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
"""What `pg_export_snapshot()` returns; checked before it is written into `SET TRANSACTION SNAPSHOT`,
which takes no parameters."""


@contextlib.asynccontextmanager
async def _reading(pool: asyncpg.Pool, snapshot: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A read-only REPEATABLE READ transaction; with `snapshot`, one that sees exactly what the
    transaction that exported it sees."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if snapshot is not None:
            if not SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError(f"unexpected snapshot id {snapshot!r}")
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        # The medians and p90s sort tens of thousands of values in memory, not in temporary files
        # (transaction-scoped, so pooled connections keep no setting).
        await conn.execute("SET LOCAL work_mem = '64MB'")
        yield conn


_RUNNING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _one_report_at_a_time() -> asyncio.Semaphore:
    """Reports run one at a time in a process (per event loop, the pool's): each holds a connection
    while it waits for two more, so several at once could take the whole pool and wait on each other
    (and the rest of the service would wait for them). Leads ask for a report now and then; the next
    one waits a few hundred ms."""
    loop = asyncio.get_running_loop()
    running = _RUNNING.get(loop)
    if running is None:
        running = _RUNNING[loop] = asyncio.Semaphore(1)
    return running


async def summary(pool: asyncpg.Pool, query: Query) -> dict[str, Any]:
    """Every figure of the report, JSON-ready (seconds as numbers, rates as fractions 0..1).

    The statements run on three connections at once, in transactions that share one snapshot
    (`pg_export_snapshot`, as pg_dump does), so the figures agree with each other as if read in one
    transaction while the report takes the time of its longest third rather than of the whole. Each is
    its own transaction (snapshot import works through PgBouncer's transaction pooling)."""
    base = (query.start, query.end, query.scope.team_id, query.channel, query.scope.agent_id)
    bounds = [query.now - timedelta(days=days) for days in AGE_BOUNDS]
    async with _one_report_at_a_time(), _reading(pool) as conn:
        snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")

        async def cohort_timings() -> tuple[list[asyncpg.Record], list[asyncpg.Record], list[asyncpg.Record]]:
            timing = await conn.fetch(_TIMING_SQL, *base, [p[0] for p in query.policies],
                                      [p[1] for p in query.policies])
            return timing, await conn.fetch(_CSAT_SQL, *base), await conn.fetch(_COMMENTS_SQL, *base)

        async def cohort_counts() -> tuple[list[asyncpg.Record], list[asyncpg.Record], int]:
            async with _reading(pool, snapshot) as other:
                return (await other.fetch(_SLA_SQL, *base, query.now),
                        await other.fetch(_COUNTS_SQL, *base, list(query.timezones), query.service_timezone),
                        await other.fetchval(_TRANSFERS_SQL, *base))

        async def now_figures() -> tuple[asyncpg.Record, list[asyncpg.Record], list[asyncpg.Record],
                                         asyncpg.Record, asyncpg.Record]:
            async with _reading(pool, snapshot) as other:
                return (await other.fetchrow(_BACKLOG_SQL, *base[2:], *bounds),
                        await other.fetch(_LOAD_SQL, *base[2:]),
                        await other.fetch(_AGENTS_SQL, query.scope.team_id, query.scope.agent_id),
                        await other.fetchrow(_NPS_SQL, query.start, query.end),
                        await other.fetchrow(_KB_SQL, query.start, query.end))

        try:
            async with asyncio.TaskGroup() as group:
                first = group.create_task(cohort_timings())
                second = group.create_task(cohort_counts())
                third = group.create_task(now_figures())
        except ExceptionGroup as failed:
            # What a read raised, as one read alone would raise it: the edge maps a database that is
            # down or too slow to 503 by the error's type, which the group would hide.
            raise failed.exceptions[0] from failed
    timing, csat, comments = first.result()
    sla, counts, transfers = second.result()
    backlog, load_rows, agents, nps, kb = third.result()
    loads = {r["assignee_id"]: r["load"] for r in load_rows}
    groups: dict[str, list[asyncpg.Record]] = {}
    for row in timing:
        groups.setdefault(_TIMED_BY[row["grouping"]], []).append(row)
    for row in counts:
        groups.setdefault(_COUNTED_BY[row["grouping"]], []).append(row)
    total = groups["all"][0]
    csat_by_agent = {r["agent_id"]: r for r in csat if r["grouping"] == 0}
    by_agent = {r["assignee_id"]: r for r in groups.get("agent", [])}
    return {
        "tickets": _ticket_figures(total, transfers),
        "sla": [_sla_row(target, {r["target"]: r for r in sla}.get(target)) for target in TARGETS],
        "backlog": _backlog(backlog, query.now),
        "by_channel": _counts(groups.get("channel", []), "channel"),
        "by_topic": _counts(groups.get("topic", []), "topic"),
        "by_language": _counts(groups.get("language", []), "language"),
        "by_hour": _hours(groups.get("hour", [])),
        "csat": _csat(csat, comments),
        "nps": _nps(nps),
        "kb": _kb(kb),
        "agents": [_agent_row(a, by_agent.get(a["id"]), csat_by_agent.get(a["id"]), loads.get(a["id"], 0))
                   for a in agents],
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _ticket_figures(row: asyncpg.Record, transfers: int) -> dict[str, Any]:
    created, ever_solved, reopened = row["tickets"], row["ever_solved"], row["reopened"]
    return {
        "created": created,
        "first_response": {"count": row["frt_count"], **_percentiles(row["frt"])},
        "resolution": {"count": row["resolved"], **_percentiles(row["resolution"])},
        "reopen": {"solved": ever_solved, "reopened": reopened, "rate": _rate(reopened, ever_solved)},
        "transfers": {"total": transfers, "per_ticket": _rate(transfers, created)},
    }


def _percentiles(values: list[float] | None) -> dict[str, float | None]:
    """`percentile_cont(ARRAY[0.5, 0.9])`: NULL when nothing was measured."""
    median, p90 = values or (None, None)
    return {"median_seconds": _seconds(median), "p90_seconds": _seconds(p90)}


def _sla_row(target: str, row: asyncpg.Record | None) -> dict[str, Any]:
    decided = row["decided"] if row else 0
    breached = row["breached"] if row else 0
    return {"target": target, "decided": decided, "met": decided - breached, "breached": breached,
            "compliance": _rate(decided - breached, decided)}


def _backlog(row: asyncpg.Record | None, now: datetime) -> dict[str, Any]:
    assert row is not None  # an aggregate without GROUP BY always answers one row
    median, p90 = [(now - created).total_seconds() for created in row["created"]] if row["created"] else (None, None)
    return {"total": row["total"], "open": row["open"], "pending": row["pending"],
            "age_median_seconds": _seconds(median), "age_p90_seconds": _seconds(p90),
            "oldest_created_at": row["oldest"].isoformat() if row["oldest"] else None,
            "by_age": [{"bucket": name, "count": row[name]} for name, _, _ in AGE_BUCKETS]}


def _counts(rows: list[asyncpg.Record], column: str) -> list[dict[str, Any]]:
    listed = [{"key": r[column], "tickets": r["tickets"]} for r in rows]
    return sorted(listed, key=lambda item: (-item["tickets"], str(item["key"])))


def _hours(rows: list[asyncpg.Record]) -> list[dict[str, int]]:
    found = {r["hour"]: r["tickets"] for r in rows}
    return [{"hour": hour, "tickets": found.get(hour, 0)} for hour in range(24)]


def _csat(rows: list[asyncpg.Record], comments: list[asyncpg.Record]) -> dict[str, Any]:
    total = next(r for r in rows if r["grouping"] == 1)
    satisfied = total["score_4"] + total["score_5"]
    return {
        "sent": total["sent"], "answered": total["answered"],
        "response_rate": _rate(total["answered"], total["sent"]),
        "average": None if total["average"] is None else round(total["average"], 2),
        "satisfied_rate": _rate(satisfied, total["answered"]),
        "distribution": [{"score": n, "count": total[f"score_{n}"]} for n in range(1, 6)],
        "comments": [{"ticket_number": c["number"], "score": c["score"], "comment": c["comment"],
                      "answered_at": c["answered_at"].isoformat() if c["answered_at"] else None,
                      "agent": c["agent"]} for c in comments],
    }


def _nps(row: asyncpg.Record | None) -> dict[str, Any]:
    assert row is not None  # an aggregate without GROUP BY always answers one row
    answered = row["answered"]
    score = None if answered == 0 else round(100 * (row["promoters"] - row["detractors"]) / answered, 1)
    return {"sent": row["sent"], "answered": answered, "promoters": row["promoters"],
            "passives": row["passives"], "detractors": row["detractors"], "score": score}


def _kb(row: asyncpg.Record | None) -> dict[str, Any]:
    assert row is not None
    return {"suggestions_shown": row["shown"], "solved": row["solved"],
            "deflection_rate": _rate(row["solved"], row["shown"])}


def _agent_row(agent: asyncpg.Record, cohort: asyncpg.Record | None, csat: asyncpg.Record | None,
               load: int) -> dict[str, Any]:
    return {
        "id": agent["id"], "name": agent["name"], "email": agent["email"], "role": agent["role"],
        "status": agent["status"],
        "assigned": cohort["tickets"] if cohort else 0,
        "handled": cohort["resolved"] if cohort else 0,
        **{f"first_response_{key}": value for key, value in _percentiles(cohort["frt"] if cohort else None).items()},
        "csat_average": None if csat is None or csat["average"] is None else round(csat["average"], 2),
        "csat_answered": csat["answered"] if csat else 0,
        "load": load, "capacity": agent["capacity"],
    }


@dataclass(frozen=True)
class Choices:
    """What the report's filter form offers."""

    teams: list[str]
    agents: list[tuple[int, str]]


async def filter_choices(conn: asyncpg.Connection) -> Choices:
    teams = [row["name"] for row in await conn.fetch("SELECT name FROM teams ORDER BY name")]
    agents = [(row["id"], row["name"]) for row in await conn.fetch(
        "SELECT id, name FROM agents WHERE active ORDER BY name, id")]
    return Choices(teams, agents)
