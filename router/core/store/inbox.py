"""The inbox list: views, filters, search and counts over `tickets` — the one query behind both the
`/inbox` page and `GET /api/v1/tickets`, so the two always list the same tickets.

Everything is a keyset page (never OFFSET): rows come in a fixed order with the ticket id as the tie
breaker, and the next page starts after the last row's key, so tickets arriving meanwhile neither
repeat nor hide rows. Most views order by last activity (`updated_at` desc, id desc; the
`tickets_*_list` indexes); "at risk" by the soonest SLA due time (`sla_targets_running`).

Search (`router.core.search`): messages carry their terms under a GIN index. A rare term (an email
address, a reference, a name) is answered from the index: few tickets match, they are sorted. A common
one (返金 in a few % of a million tickets) would make that set large and the index scan itself slow, so
the list is read by recency instead, checking each ticket's messages, which stops as soon as the page
is full. Both plans are in the one statement; an estimate from the column's statistics picks one
(`_is_common`), since PostgreSQL alone would pick a third, slow plan for terms it has no statistics for.

Counts are capped (`COUNT_CAP`: the page shows "999+"), so each costs at most that many index
entries however many tickets there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import asyncpg

from router.core.refs import Priority, Status, ref
from router.core.search import Query

View = Literal["mine", "unassigned", "team", "at_risk", "pending", "solved", "all"]
VIEWS: tuple[View, ...] = get_args(View)
Cursor = tuple[datetime, int]
"""A row's sort key: (`updated_at`, or the SLA due time in "at risk"; ticket id)."""

COUNT_CAP = 1000
"""Counts stop here; the page shows `999+`."""
SEARCH_COMMON_PAGE = 50
"""Rows a search reads by recency for one page, in the choice between its two plans (`_is_common`)."""

_ACTIVE = "t.status IN ('open', 'pending')"
_VIEW_CONDITIONS: dict[View, str] = {
    "mine": f"t.assignee_id = {{agent}} AND {_ACTIVE}",
    "unassigned": f"t.assignee_id IS NULL AND {_ACTIVE}",
    "team": f"t.team_id = (SELECT team_id FROM agents WHERE id = {{agent}}) AND {_ACTIVE}",
    "at_risk": _ACTIVE,
    "pending": "t.status = 'pending'",
    "solved": "t.status = 'solved'",
    "all": "true",
}
"""`{agent}` is the viewing agent's id (NULL for the integration token: "mine" and "team" are empty)."""


def _source(view: View, now: str) -> str:
    """The rows a view reads: tickets, or for "at risk" the tickets with a running SLA clock past its
    warning time (warned, or already breached) at `now` (a parameter), with the soonest due time."""
    if view != "at_risk":
        return "tickets t"
    # Passed through an array: the planner cannot tell from the clocks' statistics that few running
    # clocks are past their warning time (most rows are met clocks of solved tickets), and would
    # scan every open ticket; from an array it expects a few rows and looks each ticket up.
    return ("(SELECT array_agg(ticket_id) AS ids, array_agg(due) AS dues FROM (SELECT ticket_id, min(due_at) AS due"
            " FROM sla_targets WHERE met_at IS NULL AND paused_at IS NULL"
            f" AND warn_at <= {now} GROUP BY ticket_id) clocks) risky"
            " CROSS JOIN LATERAL unnest(risky.ids, risky.dues) AS risk(ticket_id, due)"
            " JOIN tickets t ON t.id = risk.ticket_id")


@dataclass(frozen=True)
class Listing:
    """What to list: a view as seen by `agent_id`, narrowed by filters and a search; None is "any"."""

    view: View = "all"
    agent_id: int | None = None
    statuses: Sequence[Status] = ()
    channel: str | None = None
    priority: Priority | None = None
    topic: str | None = None
    language: str | None = None
    assignee_id: int | None = None
    assignee_email: str | None = None
    unassigned: bool = False
    team: str | None = None
    search: Query | None = None
    after: Cursor | None = None


@dataclass(frozen=True)
class Row:
    """One line of the inbox."""

    id: int
    number: int
    status: Status
    priority: Priority
    channel: str
    subject: str | None
    topic: str | None
    language: str | None
    customer_id: int
    customer_name: str | None
    team: str | None
    assignee: str | None
    assignee_name: str | None
    created_at: datetime
    updated_at: datetime
    last_customer_message_at: datetime | None
    first_response_due: datetime | None
    sla_target: str | None
    sla_warn_at: datetime | None
    sla_due_at: datetime | None
    sla_paused: bool
    unread: bool
    sort_at: datetime

    @property
    def cursor(self) -> Cursor:
        return (self.sort_at, self.id)

    @property
    def ref(self) -> str:
        return ref(self.number)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: Cursor | None


class _Args:
    """Positional SQL parameters, named as they are added."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _filters(listing: Listing, args: _Args) -> list[str]:
    view = _VIEW_CONDITIONS[listing.view]
    conditions = [view.format(agent=args(listing.agent_id)) if "{agent}" in view else view]
    if listing.statuses:
        conditions.append(f"t.status = ANY({args(list(listing.statuses))}::text[])")
    for column, value in (("channel", listing.channel), ("priority", listing.priority), ("topic", listing.topic),
                          ("language", listing.language)):
        if value is not None:
            conditions.append(f"t.{column} = {args(value)}")
    if listing.unassigned:
        conditions.append("t.assignee_id IS NULL")
    if listing.assignee_id is not None:
        conditions.append(f"t.assignee_id = {args(listing.assignee_id)}")
    if listing.assignee_email is not None:
        conditions.append(f"t.assignee_id = (SELECT id FROM agents WHERE email = {args(listing.assignee_email)})")
    if listing.team is not None:
        conditions.append(f"t.team_id = (SELECT id FROM teams WHERE name = {args(listing.team)})")
    return conditions


def _message_matches(query: Query, args: _Args) -> str:
    """SQL true for a message `m` of `query`: it holds every term, and its text every CJK phrase (whose
    character pairs alone might be scattered over the message)."""
    sql = f"m.search_terms @> {args(list(query.terms))}::text[]"
    for phrase in query.phrases:
        sql += (" AND strpos(lower(normalize(concat_ws(' ', m.subject, m.body_text, m.sender_name), NFKC)),"
                f" {args(phrase)}) > 0")
    return sql


def _matching_tickets(query: Query, args: _Args) -> str:
    """Every ticket of `query` gathered from the GIN index (for rare terms): the tickets of the matching
    messages, and for a reference or an email address the ticket of that number and the tickets of the
    customers who have that address now (linked or merged after the messages came)."""
    found = f"SELECT m.ticket_id FROM messages m WHERE {_message_matches(query, args)}"
    if query.ref_number is not None:
        found += f" UNION ALL SELECT id FROM tickets WHERE number = {args(query.ref_number)}"
    if query.email is not None:
        for verified in ("ci.verified", "NOT ci.verified"):  # each is a partial index on (kind, value)
            found += (" UNION ALL SELECT own.id FROM customer_identities ci"
                      " JOIN tickets own ON own.customer_id = ci.customer_id"
                      f" WHERE ci.kind = 'email' AND ci.value = {args(query.email)} AND {verified}")
    return f"t.id = ANY(ARRAY({found}))"


def _is_common(query: Query, args: _Args) -> str:
    """SQL true when `query` matches so many messages that reading the list by recency fills a page
    sooner than gathering every match from the index.

    Reading by recency costs about PAGE / (share of matching messages) probes, gathering costs one
    per match: they break even at sqrt(PAGE × messages) matches (~12,000 of 3,000,000). The number
    of matches is estimated from the frequencies ANALYZE keeps for the most common terms: the pairs
    of one CJK word occur together, so a word is as common as its rarest pair; separate words are
    taken as independent. A term that is not among the common ones is rarer than all of them, so a
    query holding one is rare: the index lists it fast, whatever the other terms.
    """
    return (
        "(SELECT COALESCE(bool_and(word.freq IS NOT NULL) AND exp(sum(ln(word.freq))) * size.rows"
        f"  >= sqrt({args(SEARCH_COMMON_PAGE)} * size.rows), false)"
        " FROM (SELECT CASE WHEN bool_and(common.freq IS NOT NULL) THEN min(common.freq) END AS freq"
        f"  FROM unnest({args(list(query.terms))}::text[], {args(list(query.groups))}::int[]) AS wanted(term, grp)"
        "  LEFT JOIN (SELECT elem, freq FROM pg_stats s,"
        "   unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS x(elem, freq)"
        "   WHERE s.schemaname = current_schema() AND s.tablename = 'messages' AND s.attname = 'search_terms')"
        "  common ON common.elem = wanted.term GROUP BY wanted.grp) word"
        " CROSS JOIN (SELECT GREATEST(reltuples, 0) AS rows FROM pg_class WHERE oid = 'messages'::regclass) size"
        " GROUP BY size.rows)"
    )


_COLUMNS = (
    "t.id, t.number, t.status, t.priority, t.channel, t.subject, t.topic, t.language, t.customer_id,"
    " c.name AS customer_name, tm.name AS team, a.email AS assignee, a.name AS assignee_name,"
    " t.created_at, t.updated_at, t.last_customer_message_at,"
    " (SELECT due_at FROM sla_targets f WHERE f.ticket_id = t.id AND f.target = 'first_response'"
    "  AND f.met_at IS NULL) AS first_response_due,"
    " clock.target AS sla_target, clock.warn_at AS sla_warn_at, clock.due_at AS sla_due_at,"
    " COALESCE(clock.paused, false) AS sla_paused,"
    " (t.last_customer_message_at > COALESCE(r.read_at, '-infinity')) IS TRUE AS unread"
)
_DECORATE_JOINS = (
    " JOIN customers c ON c.id = t.customer_id"
    " LEFT JOIN agents a ON a.id = t.assignee_id LEFT JOIN teams tm ON tm.id = t.team_id"
    " LEFT JOIN ticket_reads r ON r.agent_id = $1 AND r.ticket_id = t.id"
    # The clock to show: the soonest running one, else a paused one (the ticket waits on the customer).
    " LEFT JOIN LATERAL (SELECT s.target, s.warn_at, s.due_at, s.paused_at IS NOT NULL AS paused FROM sla_targets s"
    "  WHERE s.ticket_id = t.id AND s.met_at IS NULL ORDER BY s.paused_at IS NOT NULL, s.due_at LIMIT 1) clock"
    " ON true"
)
_DECORATE = (
    f"SELECT {_COLUMNS} FROM unnest($2::bigint[]) WITH ORDINALITY AS chosen(id, position)"
    f" JOIN tickets t ON t.id = chosen.id{_DECORATE_JOINS} ORDER BY chosen.position"
)
"""The chosen tickets ($2, in page order) as rows of the list, for the agent $1."""


async def page(conn: asyncpg.Connection, listing: Listing, now: datetime, limit: int) -> Page:
    """One keyset page of `listing`, and the cursor of the next page (None on the last).

    The page's ticket ids are chosen first, then decorated (customer, agent, SLA clock, unread) by a
    second, fixed statement: the choice is the part whose plan matters, and planning it alone,
    without the joins that only dress up fifty rows, keeps a search's planning time small."""
    if listing.search is not None and listing.search.empty:
        return Page([], None)  # nothing searchable was typed (punctuation only): nothing matches
    args = _Args()
    source = _source(listing.view, args(now) if listing.view == "at_risk" else "")
    conditions = _filters(listing, args)
    at_risk = listing.view == "at_risk"
    key = "risk.due" if at_risk else "t.updated_at"
    order = "ASC" if at_risk else "DESC"
    if listing.after is not None:
        compare = ">" if at_risk else "<"
        conditions.append(f"({key}, t.id) {compare} ({args(listing.after[0])}, {args(listing.after[1])})")
    top = f"ORDER BY {key} {order}, t.id {order} LIMIT {args(limit + 1)}"
    chosen = f"SELECT t.id, {key} AS sort_at FROM {source} WHERE {' AND '.join(conditions)}"
    search = listing.search
    if search is None:
        picked = await conn.fetch(f"{chosen} {top}", *args.values)
    else:
        if search.ref_number is not None or search.email is not None:
            chosen = f"{chosen} AND {_matching_tickets(search, args)} {top}"
        else:
            # OFFSET 0 keeps the check a per-ticket probe: as a join, the planner (misled by correlated
            # terms, e.g. the pairs of 請求書) may gather every match first, the very thing to avoid here.
            by_recency = (f"EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id"
                          f" AND {_message_matches(search, args)} OFFSET 0)")
            gathered = _matching_tickets(search, args)
            chosen = (f"WITH plan AS MATERIALIZED (SELECT {_is_common(search, args)} AS common)"
                      f" ({chosen} AND (SELECT common FROM plan) AND {by_recency} {top})"
                      f" UNION ALL ({chosen} AND NOT (SELECT common FROM plan) AND {gathered} {top})")
        # A search's plan depends on its terms: never the cached generic plan of an earlier search.
        async with conn.transaction(readonly=True):
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            picked = await conn.fetch(chosen, *args.values)
    picked = sorted(picked, key=lambda row: (row["sort_at"], row["id"]), reverse=not at_risk)
    sort_at = {row["id"]: row["sort_at"] for row in picked}
    rows = await conn.fetch(_DECORATE, listing.agent_id, [row["id"] for row in picked[:limit]])
    found = [Row(**dict(row), sort_at=sort_at[row["id"]]) for row in rows]
    return Page(found, found[-1].cursor if len(picked) > limit and found else None)


async def counts(conn: asyncpg.Connection, agent_id: int | None, now: datetime) -> dict[View, int]:
    """How many tickets each view holds for `agent_id`, each capped at `COUNT_CAP`; one round trip."""
    parts = []
    for view in VIEWS:
        condition = _VIEW_CONDITIONS[view].format(agent="$1")
        parts.append(f"(SELECT count(*) FROM (SELECT 1 FROM {_source(view, '$2')} WHERE {condition}"
                     f" LIMIT {COUNT_CAP}) x) AS {view}")
    row = await conn.fetchrow(f"SELECT {', '.join(parts)}", agent_id, now)
    return {view: row[view] for view in VIEWS}


async def filter_choices(conn: asyncpg.Connection) -> tuple[list[tuple[int, str]], list[str]]:
    """(id, name) of the active agents and the team names, for the assignee and team filters."""
    row = await conn.fetchrow(
        "SELECT ARRAY(SELECT ROW(id, name) FROM agents WHERE active ORDER BY name, id) AS agents,"
        " ARRAY(SELECT name FROM teams ORDER BY name) AS teams")
    return [(agent_id, name) for agent_id, name in row["agents"]], list(row["teams"])
