"""Tickets: threading a message into the customer's one conversation, status changes, read models.

SQL for the `tickets`, `messages` and `routing_log` tables lives here (ARCHITECTURE: SQL in the
module that owns the table).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from agents import store as agent_store
from router.core.store import events
from router.config import Config
from sla import clocks

REF_PATTERN = re.compile(r"\bT-(\d{1,12})\b")
ACTIVE = ("open", "pending")
TICKET_COLUMNS = (
    "id, number, customer_id, status, priority, channel, subject, topic, skill, language, team_id,"
    " assignee_id, previous_ticket_id, sla_policy,"
    " first_responded_at, last_customer_message_at, last_agent_reply_at, solved_at, created_at, updated_at"
)


def ref(number: int) -> str:
    return f"T-{number}"


def parse_ref(text: str) -> int | None:
    """`T-1042` → 1042; None when `text` is not a ticket reference."""
    match = REF_PATTERN.fullmatch(text.strip().upper()) if text else None
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ThreadChoice:
    """Where a message goes: join/reopen an existing ticket, or start a new one (linked to `previous`)."""

    action: str  # "join" | "reopen" | "new"
    ticket: asyncpg.Record | None
    previous_ticket_id: int | None = None


async def _by_id(conn: asyncpg.Connection, ticket_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE", ticket_id)


async def _hinted_ticket(conn: asyncpg.Connection, customer_id: int, thread_refs: tuple[str, ...],
                         number_hint: int | None) -> asyncpg.Record | None:
    """A ticket the message names. By Message-ID: one of our outbound mails (their ids are HMACs,
    unguessable, so a colleague replying to our mail joins that ticket), or one of this customer's
    own mails. By `T-n` in the subject or address (guessable): only this customer's tickets."""
    if thread_refs:
        ticket_id = await conn.fetchval(
            "SELECT ticket_id FROM messages WHERE channel = 'email' AND external_id = ANY($1::text[])"
            " AND (direction = 'out' OR customer_id = $2) ORDER BY id DESC LIMIT 1", list(thread_refs), customer_id)
        if ticket_id is not None:
            return await _by_id(conn, ticket_id)
    if number_hint is not None:
        return await conn.fetchrow(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1 AND customer_id = $2 FOR UPDATE",
            number_hint, customer_id)
    return None


async def choose_thread(conn: asyncpg.Connection, customer_id: int, *, thread_refs: tuple[str, ...],
                        number_hint: int | None, now: datetime, reopen_window: timedelta,
                        new_customer: bool = False) -> ThreadChoice:
    """SPEC §2.5: the named ticket if it is open, else the customer's open ticket (any channel), else
    reopen the named or latest solved ticket within the reopen window, else a new ticket linked to
    the last one. A customer never gets a second open ticket."""
    hinted = None
    if thread_refs or number_hint is not None:
        hinted = await _hinted_ticket(conn, customer_id, thread_refs, number_hint)
        if hinted is not None and hinted["status"] in ACTIVE:
            return ThreadChoice("join", hinted)
    own = None
    if not new_customer:
        # Active first, then the most recently solved, then the latest (closed) one: one query.
        own = await conn.fetchrow(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE customer_id = $1"
            " ORDER BY status IN ('open', 'pending') DESC, status = 'solved' DESC,"
            " COALESCE(solved_at, created_at) DESC LIMIT 1 FOR UPDATE", customer_id)
        if own is not None and own["status"] in ACTIVE:
            return ThreadChoice("join", own)
    # A named solved ticket decides (reopen, or a new ticket linked to it when too old); a named
    # closed one (e.g. merged into another thread) does not: the customer's latest does.
    candidate = hinted if hinted is not None and hinted["status"] == "solved" else (own or hinted)
    if candidate is None:
        return ThreadChoice("new", None)
    solved_at = candidate["solved_at"]
    if candidate["status"] == "solved" and solved_at is not None and now - solved_at <= reopen_window:
        return ThreadChoice("reopen", candidate)
    return ThreadChoice("new", None, previous_ticket_id=candidate["id"])


async def create(conn: asyncpg.Connection, *, customer_id: int, channel: str, subject: str | None,
                 status: str, priority: str, topic: str | None, skill: str | None, language: str,
                 team: str | None, sla_policy: str | None, previous_ticket_id: int | None,
                 now: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO tickets (customer_id, channel, subject, status, priority, topic, skill, language,"
        " team_id, sla_policy, previous_ticket_id, last_customer_message_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT id FROM teams WHERE name = $9), $10, $11, $12, $12, $12)"
        f" RETURNING {TICKET_COLUMNS}",
        customer_id, channel, subject, status, priority, topic, skill, language, team, sla_policy,
        previous_ticket_id, now)


@dataclass(frozen=True)
class CustomerWrote:
    """The ticket change that goes with a customer message on an existing ticket: it is open again
    (a pending ticket, or a solved one when `reopen`), with `priority`."""

    reopen: bool
    priority: str


@dataclass(frozen=True)
class Inserted:
    message_id: int | None  # None: the channel already had this external id (a redelivery)
    ticket: asyncpg.Record | None  # the updated ticket, with `customer_wrote`


_MESSAGE_INSERT = (
    " m AS (INSERT INTO messages (ticket_id, customer_id, channel, direction, external_id,"
    "  sender_identity_id, author_agent_id, sender_name, subject, body_text, body_html, quoted_text, raw_ref,"
    "  auto_kind, metadata, created_at)"
    "  SELECT {ticket}, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 {source}"
    "  ON CONFLICT (channel, external_id) DO NOTHING RETURNING id, ticket_id),"
    " e AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
    "  SELECT m.ticket_id, x.kind, x.payload || jsonb_build_object('message_id', m.id), $16"
    "  FROM m, unnest($17::text[], $18::jsonb[]) AS x(kind, payload))"
)
"""The message and its events, as CTEs `m` and `e` (parameters $2-$18, the ticket from the caller)."""


def _message_args(customer_id: int | None, channel: str, direction: str, external_id: str, body_text: str,
                  now: datetime, sender_identity_id: int | None = None, author_agent_id: int | None = None,
                  sender_name: str | None = None, subject: str | None = None, body_html: str | None = None,
                  quoted_text: str | None = None, raw_ref: str | None = None, auto_kind: str | None = None,
                  metadata: dict[str, Any] | None = None,
                  events: Sequence[tuple[str, dict[str, Any]]] = ()) -> tuple[Any, ...]:
    return (customer_id, channel, direction, external_id, sender_identity_id, author_agent_id, sender_name,
            subject, body_text, body_html, quoted_text, raw_ref, auto_kind, metadata or {}, now,
            [kind for kind, _ in events], [payload for _, payload in events])


async def insert_message(conn: asyncpg.Connection, *, ticket_id: int, customer_wrote: CustomerWrote | None = None,
                         **message: Any) -> Inserted:
    """Insert a message, the events that go with it (each payload gets the new `message_id`) and,
    with `customer_wrote`, the ticket update — in one statement, one round trip. `message` takes
    the keyword arguments of `_message_args`."""
    row = await conn.fetchrow(
        "WITH t AS (UPDATE tickets SET last_customer_message_at = $16, updated_at = $16, priority = $20,"
        "  status = CASE WHEN status = 'pending' OR $21 THEN 'open' ELSE status END,"
        f"  solved_at = CASE WHEN $21 THEN NULL ELSE solved_at END WHERE id = $1 AND $19 RETURNING {TICKET_COLUMNS}),"
        + _MESSAGE_INSERT.format(ticket="$1::bigint", source="")
        + " SELECT (SELECT id FROM m) AS inserted_message_id, t.* FROM (SELECT 1) AS one LEFT JOIN t ON true",
        ticket_id, *_message_args(**message), customer_wrote is not None,
        customer_wrote.priority if customer_wrote else None, bool(customer_wrote and customer_wrote.reopen))
    return Inserted(row["inserted_message_id"], row if customer_wrote is not None else None)


_QUALIFIED_TICKET_COLUMNS = ", ".join(f"tickets.{c.strip()}" for c in TICKET_COLUMNS.split(","))


async def join_active_ticket(conn: asyncpg.Connection, customer_id: int, *, priority: str,
                             **message: Any) -> Inserted | None:
    """The most common message of all: a follow-up while the customer has an active ticket. One
    statement locks that ticket, opens it (a pending one comes back), raises its priority to
    `priority` if higher, and stores the message with its events. None when the customer has no
    active ticket: then the general threading rules (`choose_thread`) decide. The returned ticket
    carries `previous_status` and `previous_priority`."""
    row = await conn.fetchrow(
        "WITH cand AS (SELECT id, status, priority FROM tickets WHERE customer_id = $1"
        "  AND status IN ('open', 'pending') ORDER BY created_at DESC LIMIT 1 FOR UPDATE),"
        " t AS (UPDATE tickets SET last_customer_message_at = $16, updated_at = $16, status = 'open',"
        "  priority = CASE WHEN array_position(ARRAY['low', 'normal', 'high', 'urgent'], $19::text)"
        "   > array_position(ARRAY['low', 'normal', 'high', 'urgent'], tickets.priority)"
        "   THEN $19 ELSE tickets.priority END"
        f"  FROM cand WHERE tickets.id = cand.id RETURNING {_QUALIFIED_TICKET_COLUMNS},"
        "  cand.status AS previous_status, cand.priority AS previous_priority),"
        + _MESSAGE_INSERT.format(ticket="t.id", source="FROM t")
        + " SELECT (SELECT id FROM m) AS inserted_message_id, t.* FROM t",
        customer_id, *_message_args(customer_id=customer_id, **message), priority)
    return None if row is None else Inserted(row["inserted_message_id"], row)


async def find_message(conn: asyncpg.Connection, channel: str, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT m.id, m.ticket_id, t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE m.channel = $1 AND m.external_id = $2", channel, external_id)


async def merge_active_threads(conn: asyncpg.Connection, config: Config, customer_id: int, now: datetime, *,
                               actor_id: int | None = None) -> int | None:
    """After a customer merge: keep the oldest active ticket as the thread and move the messages of
    the other active tickets into it; those are closed with a note saying where they went."""
    active = await conn.fetch(
        "SELECT id, number, assignee_id, priority FROM tickets WHERE customer_id = $1"
        " AND status IN ('open', 'pending') ORDER BY created_at, id FOR UPDATE", customer_id)
    if not active:
        return None
    thread, others = active[0], active[1:]
    for other in others:
        await conn.execute("UPDATE messages SET ticket_id = $1 WHERE ticket_id = $2", thread["id"], other["id"])
        await conn.execute(
            "UPDATE tickets SET status = 'closed', assignee_id = NULL, updated_at = $2 WHERE id = $1",
            other["id"], now)
        await clocks.stop_all(conn, other["id"], now)
        await agent_store.log_routing(conn, other["id"], "merged", f"merged into {ref(thread['number'])}", now,
                          actor_id=actor_id)
        await events.record(conn, other["id"], "ticket.merged", {"into": ref(thread["number"])}, now)
    for agent_id in sorted(o["assignee_id"] for o in others if o["assignee_id"] is not None):
        await agent_store.release_load(conn, agent_id)  # in id order, like every multi-agent change
    # The thread takes the highest priority of the merged tickets, and the merged customer's tier
    # (a VIP record folded in makes the thread VIP): its SLA policy follows both.
    top = max((t["priority"] for t in active), key=("low", "normal", "high", "urgent").index)
    tier = await conn.fetchval("SELECT tier FROM customers WHERE id = $1", customer_id)
    updated = await conn.fetchrow(
        f"UPDATE tickets SET priority = $2, updated_at = $3 WHERE id = $1 RETURNING {TICKET_COLUMNS}",
        thread["id"], top, now)
    await clocks.recompute(conn, config, updated, tier, now)
    return thread["id"]


async def update(conn: asyncpg.Connection, config: Config, ticket: asyncpg.Record, *, status: str | None,
                 priority: str | None, now: datetime, actor_id: int | None) -> None:
    """An agent changes status/priority. Leaving open/pending frees the assignee's slot; coming back
    takes it again (even above capacity: the agent already owns this conversation). SLA clocks
    pause while pending, stop when solved/closed, and follow a priority change."""
    changes: dict[str, Any] = {}
    if status is not None and status != ticket["status"]:
        was_active, now_active = ticket["status"] in ACTIVE, status in ACTIVE
        if ticket["assignee_id"] is not None and was_active and not now_active:
            await agent_store.release_load(conn, ticket["assignee_id"])
        if ticket["assignee_id"] is not None and now_active and not was_active:
            await agent_store.add_load(conn, ticket["assignee_id"])
        await conn.execute(
            "UPDATE tickets SET status = $2, updated_at = $3,"
            " solved_at = CASE WHEN $2 = 'solved' THEN $3 WHEN $2 IN ('open', 'pending') THEN NULL"
            " ELSE solved_at END WHERE id = $1", ticket["id"], status, now)
        changes["status"] = [ticket["status"], status]
        if not now_active:
            await clocks.stop_all(conn, ticket["id"], now)
        elif not was_active:
            await clocks.reopen(conn, config, ticket, now)
        elif status == "open":
            await clocks.resume(conn, config, ticket["id"], now)
        if status == "pending":
            await clocks.pause(conn, ticket["id"], now)
    if priority is not None and priority != ticket["priority"]:
        await conn.execute("UPDATE tickets SET priority = $2, updated_at = $3 WHERE id = $1",
                           ticket["id"], priority, now)
        changes["priority"] = [ticket["priority"], priority]
        tier = await conn.fetchval("SELECT tier FROM customers WHERE id = $1", ticket["customer_id"])
        current = await conn.fetchrow(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1", ticket["id"])
        await clocks.recompute(conn, config, current, tier, now)
    if changes:
        await events.record(conn, ticket["id"], "ticket.updated", {"changes": changes, "actor": actor_id}, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def detail(conn: asyncpg.Connection, ticket: asyncpg.Record) -> dict[str, Any]:
    """The ticket as the inbox shows it: every message across channels, SLA clocks, routing log."""
    messages = await conn.fetch(
        "SELECT m.id, m.channel, m.direction, m.sender_name, m.subject, m.body_text, m.body_html, m.quoted_text,"
        " m.auto_kind, m.created_at, a.email AS author,"
        " COALESCE(json_agg(json_build_object('filename', f.filename, 'content_type', f.content_type,"
        " 'size', f.size, 'sha256', f.sha256, 'inline', f.inline)) FILTER (WHERE f.id IS NOT NULL), '[]')"
        " AS attachments"
        " FROM messages m LEFT JOIN agents a ON a.id = m.author_agent_id"
        " LEFT JOIN attachments f ON f.message_id = m.id"
        " WHERE m.ticket_id = $1 GROUP BY m.id, a.email ORDER BY m.created_at, m.id", ticket["id"])
    routing = await conn.fetch(
        "SELECT r.action, r.reason, r.created_at, a.email AS agent, b.email AS actor FROM routing_log r"
        " LEFT JOIN agents a ON a.id = r.agent_id LEFT JOIN agents b ON b.id = r.actor_id"
        " WHERE r.ticket_id = $1 ORDER BY r.id", ticket["id"])
    names = await conn.fetchrow(
        "SELECT c.name AS customer_name, tm.name AS team, a.email AS assignee,"
        " (SELECT number FROM tickets p WHERE p.id = $4) AS previous_number"
        " FROM customers c LEFT JOIN teams tm ON tm.id = $2 LEFT JOIN agents a ON a.id = $3 WHERE c.id = $1",
        ticket["customer_id"], ticket["team_id"], ticket["assignee_id"], ticket["previous_ticket_id"])
    return {
        "ref": ref(ticket["number"]),
        "status": ticket["status"],
        "priority": ticket["priority"],
        "channel": ticket["channel"],
        "subject": ticket["subject"],
        "topic": ticket["topic"],
        "skill": ticket["skill"],
        "language": ticket["language"],
        "team": names["team"],
        "assignee": names["assignee"],
        "customer": {"id": ticket["customer_id"], "name": names["customer_name"]},
        "previous_ticket": ref(names["previous_number"]) if names["previous_number"] else None,
        "created_at": _iso(ticket["created_at"]),
        "updated_at": _iso(ticket["updated_at"]),
        "sla": {
            "policy": ticket["sla_policy"],
            "first_responded_at": _iso(ticket["first_responded_at"]),
            "clocks": await clocks.clocks_json(conn, ticket["id"]),
        },
        "messages": [{
            "id": m["id"], "channel": m["channel"], "direction": m["direction"], "sender_name": m["sender_name"],
            "author": m["author"], "subject": m["subject"], "text": m["body_text"], "html": m["body_html"],
            "quoted_text": m["quoted_text"], "auto_kind": m["auto_kind"], "created_at": _iso(m["created_at"]),
            "attachments": m["attachments"],
        } for m in messages],
        "routing_log": [{"action": r["action"], "reason": r["reason"], "agent": r["agent"], "actor": r["actor"],
                         "at": _iso(r["created_at"])} for r in routing],
    }
