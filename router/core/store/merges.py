"""The merge log (`customer_merges` and its `customer_merge_*` rows): the only writer of those tables.

A merge is recorded BEFORE it changes anything: every identity, ticket and message it is about to
move, as it was, so a split can put each back exactly. The split's restoring statements for
tickets, messages and SLA targets live here too, next to the log they replay: they write back values
this log recorded (the merge's inverse); the one new row is `follow_up_ticket`, where a side's later
messages go when it has no ticket to return to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from router.core.errors import NotFound


@dataclass(frozen=True)
class MergeRow:
    id: int
    survivor_id: int
    merged_id: int
    actor_id: int | None
    reason: str
    suggestion_id: int | None
    thread_id: int | None
    survivor_before: dict[str, Any]
    merged_at: datetime
    undone_at: datetime | None
    undone_by: int | None
    undo_reason: str | None


@dataclass(frozen=True)
class TicketBefore:
    """A ticket the merge touched, as it was just before."""

    ticket_id: int
    customer_id: int
    folded: bool
    status: str
    assignee_id: int | None
    priority: str
    sla_policy: str | None
    stopped_targets: tuple[str, ...]


_COLUMNS = ("id, survivor_id, merged_id, actor_id, reason, suggestion_id, thread_id, survivor_before, merged_at,"
            " undone_at, undone_by, undo_reason")


def _merge(row: asyncpg.Record) -> MergeRow:
    values = dict(row)
    before = values["survivor_before"]
    values["survivor_before"] = json.loads(before) if isinstance(before, str) else dict(before)
    return MergeRow(**values)


async def begin(conn: asyncpg.Connection, survivor_id: int, merged_id: int, *, actor_id: int | None, reason: str,
                suggestion_id: int | None, survivor_before: dict[str, Any], dropped: list[int],
                now: datetime) -> int:
    """Log a merge about to happen, with everything it will move as it is now (both customers are
    locked by the caller). Active tickets of both are locked here, oldest first — the thread the
    merge keeps is the first, the rest are folded into it (`core.merge._one_thread` agrees)."""
    merge_id: int = await conn.fetchval(
        "INSERT INTO customer_merges (survivor_id, merged_id, actor_id, reason, suggestion_id, survivor_before,"
        " merged_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        survivor_id, merged_id, actor_id, reason, suggestion_id, survivor_before, now)
    await conn.execute(
        "INSERT INTO customer_merge_identities (merge_id, identity_id, customer_id, dropped, kind, value, verified,"
        " created_at) SELECT $1, id, customer_id, id = ANY($3::bigint[]), kind, value, verified, created_at"
        " FROM customer_identities WHERE customer_id = $2 OR id = ANY($3::bigint[])",
        merge_id, merged_id, dropped)
    await conn.execute(
        "WITH locked AS (SELECT id, created_at FROM tickets WHERE customer_id IN ($2, $3)"
        "  AND status IN ('open', 'pending') ORDER BY created_at, id FOR UPDATE),"
        " active AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM locked)"
        " INSERT INTO customer_merge_tickets (merge_id, ticket_id, customer_id, folded, status, assignee_id, priority,"
        "  sla_policy, stopped_targets)"
        " SELECT $1, t.id, t.customer_id, COALESCE(a.n > 1, false), t.status, t.assignee_id, t.priority, t.sla_policy,"
        "  CASE WHEN a.n > 1 THEN ARRAY(SELECT target FROM sla_targets s WHERE s.ticket_id = t.id"
        "   AND s.met_at IS NULL ORDER BY target) ELSE '{}' END"
        " FROM tickets t LEFT JOIN active a ON a.id = t.id WHERE t.customer_id = $3 OR a.id IS NOT NULL",
        merge_id, survivor_id, merged_id)
    await conn.execute(
        "INSERT INTO customer_merge_clocks (merge_id, ticket_id, target, cycle, policy, started_at, warn_at, due_at,"
        " paused_at, paused_for, met_at, warned_at, breached_at)"
        " SELECT $1, s.ticket_id, s.target, s.cycle, s.policy, s.started_at, s.warn_at, s.due_at, s.paused_at,"
        " s.paused_for, s.met_at, s.warned_at, s.breached_at FROM sla_targets s JOIN customer_merge_tickets b"
        " ON b.ticket_id = s.ticket_id AND b.merge_id = $1 AND (b.folded OR b.status IN ('open', 'pending'))",
        merge_id)
    await conn.execute(
        "INSERT INTO customer_merge_messages (merge_id, message_id, customer_id, ticket_id, sender_identity_id)"
        " SELECT $1, m.id, m.customer_id, m.ticket_id, m.sender_identity_id FROM messages m"
        " WHERE m.customer_id = $2 OR m.sender_identity_id = ANY($3::bigint[])"
        "  OR m.ticket_id IN (SELECT ticket_id FROM customer_merge_tickets WHERE merge_id = $1 AND folded)",
        merge_id, merged_id, dropped)
    return merge_id


async def detach_senders(conn: asyncpg.Connection, dropped: list[int]) -> None:
    """Messages sent from a claim the merge drops with nothing standing for it name no sender
    identity while the merge holds (`begin` logged each one's sender; a split restores it)."""
    if dropped:
        await conn.execute("UPDATE messages SET sender_identity_id = NULL WHERE sender_identity_id = ANY($1::bigint[])",
                           dropped)


async def set_thread(conn: asyncpg.Connection, merge_id: int, thread_id: int | None) -> None:
    await conn.execute("UPDATE customer_merges SET thread_id = $2 WHERE id = $1", merge_id, thread_id)


async def get(conn: asyncpg.Connection, merge_id: int, *, lock: bool = False) -> MergeRow:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM customer_merges WHERE id = $1{' FOR UPDATE' if lock else ''}",
                              merge_id)
    if row is None:
        raise NotFound(f"no merge {merge_id}")
    return _merge(row)


async def later_merge(conn: asyncpg.Connection, merge: MergeRow) -> int | None:
    """A later merge, not undone, of either customer: it built on this one, so it must be undone first."""
    found: int | None = await conn.fetchval(
        "SELECT id FROM customer_merges WHERE id > $1 AND undone_at IS NULL"
        " AND (survivor_id IN ($2, $3) OR merged_id IN ($2, $3)) ORDER BY id DESC LIMIT 1",
        merge.id, merge.survivor_id, merge.merged_id)
    return found


async def identities_before(conn: asyncpg.Connection, merge_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT identity_id, customer_id, dropped, kind, value, verified, created_at FROM customer_merge_identities"
        " WHERE merge_id = $1 ORDER BY identity_id", merge_id))


async def tickets_before(conn: asyncpg.Connection, merge_id: int) -> list[TicketBefore]:
    """The tickets the merge touched, locked, in id order."""
    rows = await conn.fetch(
        "SELECT b.ticket_id, b.customer_id, b.folded, b.status, b.assignee_id, b.priority, b.sla_policy,"
        " b.stopped_targets FROM customer_merge_tickets b JOIN tickets t ON t.id = b.ticket_id"
        " WHERE b.merge_id = $1 ORDER BY b.ticket_id FOR UPDATE OF t", merge_id)
    return [TicketBefore(**{**dict(row), "stopped_targets": tuple(row["stopped_targets"])}) for row in rows]


async def restore_messages(conn: asyncpg.Connection, merge_id: int) -> int:
    """Every message the merge moved goes back to its customer, ticket and sender identity."""
    status: str = await conn.execute(
        "UPDATE messages m SET customer_id = b.customer_id, ticket_id = b.ticket_id,"
        " sender_identity_id = b.sender_identity_id FROM customer_merge_messages b"
        " WHERE b.merge_id = $1 AND m.id = b.message_id", merge_id)
    return int(status.split()[-1])


async def restore_ticket_owners(conn: asyncpg.Connection, merge_id: int, merged_id: int) -> None:
    await conn.execute(
        "UPDATE tickets t SET customer_id = b.customer_id FROM customer_merge_tickets b"
        " WHERE b.merge_id = $1 AND t.id = b.ticket_id AND b.customer_id = $2", merge_id, merged_id)


async def reopen_folded(conn: asyncpg.Connection, ticket: TicketBefore, assignee_id: int | None,
                        merged_at: datetime, now: datetime) -> None:
    """A ticket the fold closed gets its status back, and exactly the SLA targets the fold stopped
    run again from where they were (their start, pauses and warnings unchanged): as if never closed."""
    await conn.execute("UPDATE tickets SET status = $2, assignee_id = $3, updated_at = $4 WHERE id = $1",
                       ticket.ticket_id, ticket.status, assignee_id, now)
    await conn.execute("UPDATE sla_targets SET met_at = NULL WHERE ticket_id = $1 AND target = ANY($2::text[])"
                       " AND met_at = $3", ticket.ticket_id, list(ticket.stopped_targets), merged_at)


async def restore_dropped_clocks(conn: asyncpg.Connection, merge_id: int, ticket_id: int) -> None:
    """SLA targets of `ticket_id` that were running before the merge and are gone now (the merged
    policy had no such target) come back as they were; `clocks.recompute` then times them."""
    await conn.execute(
        "INSERT INTO sla_targets (ticket_id, target, cycle, policy, started_at, warn_at, due_at, paused_at,"
        " paused_for, met_at, warned_at, breached_at)"
        " SELECT ticket_id, target, cycle, policy, started_at, warn_at, due_at, paused_at, paused_for, met_at,"
        " warned_at, breached_at FROM customer_merge_clocks WHERE merge_id = $1 AND ticket_id = $2 AND met_at IS NULL"
        " ON CONFLICT (ticket_id, target) DO NOTHING", merge_id, ticket_id)


async def follow_senders(conn: asyncpg.Connection, merge: MergeRow, homes: dict[int, int]) -> int:
    """Messages that arrived after the merge on a ticket of one side, from an identity of the other
    side, follow their sender to that side's ticket (`homes`: customer id → ticket id). Returns how many moved."""
    if not homes:
        return 0
    status: str = await conn.execute(
        "UPDATE messages m SET ticket_id = h.ticket_id, customer_id = ci.customer_id"
        " FROM customer_identities ci, unnest($2::bigint[], $3::bigint[]) AS h(customer_id, ticket_id), tickets t"
        " WHERE m.sender_identity_id = ci.id AND ci.customer_id = h.customer_id AND t.id = m.ticket_id"
        " AND t.customer_id IN ($4, $5) AND t.customer_id <> ci.customer_id AND m.direction = 'in'"
        " AND m.created_at >= $6 AND m.ticket_id <> h.ticket_id"
        " AND NOT EXISTS (SELECT 1 FROM customer_merge_messages b WHERE b.merge_id = $1 AND b.message_id = m.id)",
        merge.id, list(homes), list(homes.values()), merge.survivor_id, merge.merged_id, merge.merged_at)
    return int(status.split()[-1])


async def has_later_messages(conn: asyncpg.Connection, merge: MergeRow, customer_id: int) -> bool:
    """Did an identity of `customer_id` write, after the merge, on a ticket of the other side?"""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages m JOIN customer_identities ci ON ci.id = m.sender_identity_id"
        " JOIN tickets t ON t.id = m.ticket_id WHERE ci.customer_id = $2 AND t.customer_id IN ($3, $4)"
        " AND t.customer_id <> $2 AND m.direction = 'in' AND m.created_at >= $5"
        " AND NOT EXISTS (SELECT 1 FROM customer_merge_messages b WHERE b.merge_id = $1 AND b.message_id = m.id))",
        merge.id, customer_id, merge.survivor_id, merge.merged_id, merge.merged_at)
    return found


async def follow_up_ticket(conn: asyncpg.Connection, previous_id: int, now: datetime) -> int:
    """A new open ticket continuing `previous_id` (its customer, channel, subject and classification),
    for a side's later messages when a split finds it no ticket to take them back to."""
    ticket_id: int = await conn.fetchval(
        "INSERT INTO tickets (customer_id, channel, subject, status, priority, topic, skill, language, team_id,"
        " previous_ticket_id, last_customer_message_at, created_at, updated_at)"
        " SELECT customer_id, channel, subject, 'open', priority, topic, skill, language, team_id, id, $2, $2, $2"
        " FROM tickets WHERE id = $1 RETURNING id", previous_id, now)
    return ticket_id


async def follow_new_tickets(conn: asyncpg.Connection, merge: MergeRow) -> list[int]:
    """Tickets started after the merge by an identity of the merged customer return with it."""
    rows = await conn.fetch(
        "WITH moved AS (UPDATE tickets t SET customer_id = $3 WHERE t.customer_id = $2 AND t.created_at >= $4"
        "  AND (SELECT ci.customer_id FROM messages m JOIN customer_identities ci ON ci.id = m.sender_identity_id"
        "   WHERE m.ticket_id = t.id AND m.direction = 'in' ORDER BY m.created_at, m.id LIMIT 1) = $3"
        "  AND NOT EXISTS (SELECT 1 FROM customer_merge_tickets b WHERE b.merge_id = $1 AND b.ticket_id = t.id)"
        "  RETURNING t.id),"
        " msgs AS (UPDATE messages m SET customer_id = $3 FROM moved WHERE m.ticket_id = moved.id"
        "  AND m.customer_id = $2)"
        " SELECT id FROM moved",
        merge.id, merge.survivor_id, merge.merged_id, merge.merged_at)
    return sorted(row["id"] for row in rows)


async def mark_undone(conn: asyncpg.Connection, merge_id: int, actor_id: int | None, why: str, now: datetime) -> None:
    await conn.execute("UPDATE customer_merges SET undone_at = $2, undone_by = $3, undo_reason = $4 WHERE id = $1",
                       merge_id, now, actor_id, why)


async def for_customer(conn: asyncpg.Connection, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Merges either side of which is this customer, newest first, as agents see them."""
    rows = await conn.fetch(
        "SELECT m.id, m.survivor_id, m.merged_id, m.reason, m.merged_at, m.undone_at, m.undo_reason,"
        " m.suggestion_id, a.email AS actor, u.email AS undone_by,"
        " (SELECT count(*) FROM customer_merge_messages b WHERE b.merge_id = m.id) AS messages_moved,"
        " (SELECT count(*) FROM customer_merge_tickets b WHERE b.merge_id = m.id AND b.folded) AS tickets_folded"
        " FROM customer_merges m LEFT JOIN agents a ON a.id = m.actor_id LEFT JOIN agents u ON u.id = m.undone_by"
        " WHERE m.survivor_id = $1 OR m.merged_id = $1 ORDER BY m.id DESC LIMIT $2", customer_id, limit)
    return [merge_json(row) for row in rows]


def merge_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"], "survivor": row["survivor_id"], "merged": row["merged_id"], "reason": row["reason"],
        "actor": row["actor"], "at": row["merged_at"].isoformat(), "suggestion": row["suggestion_id"],
        "messages_moved": row["messages_moved"], "tickets_folded": row["tickets_folded"],
        "undone": None if row["undone_at"] is None else {
            "at": row["undone_at"].isoformat(), "by": row["undone_by"], "why": row["undo_reason"]},
    }
