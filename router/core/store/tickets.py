"""Tickets and their messages: the only writer of `tickets` and `messages` (apart from the
documented one-statement hot paths: assignment in `agents.assignment`, outbound messages in
`store.outbox`), and their read models.

What a change *means* (clocks, agent load, events) is decided by the callers in `core.pipeline`
and `core.actions`; this module only stores. Hot paths store a message, its events and the ticket
update in one statement (one round trip), which is why events appear in these CTEs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from router.core.refs import PRIORITIES, Priority, Status, is_active, ref
from router.core.search import document_terms

Direction = Literal["in", "out", "note", "system"]
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Ticket:
    """A ticket row as the domain sees it."""

    id: int
    number: int
    customer_id: int
    status: Status
    priority: Priority
    channel: str
    subject: str | None
    topic: str | None
    skill: str | None
    language: str
    team_id: int | None
    assignee_id: int | None
    previous_ticket_id: int | None
    sla_policy: str | None
    first_responded_at: datetime | None
    last_customer_message_at: datetime | None
    last_agent_reply_at: datetime | None
    solved_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        return ref(self.number)

    @property
    def active(self) -> bool:
        return is_active(self.status)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Ticket:
        return cls(**{name: row[name] for name in _FIELDS})


_FIELDS = tuple(f.name for f in dataclasses.fields(Ticket))
COLUMNS = ", ".join(_FIELDS)
_QUALIFIED = ", ".join(f"tickets.{name}" for name in _FIELDS)


@dataclass(frozen=True)
class NewTicket:
    customer_id: int
    channel: str
    subject: str | None
    status: Status
    priority: Priority
    topic: str | None
    skill: str | None
    language: str
    team: str | None
    sla_policy: str | None
    previous_ticket_id: int | None


@dataclass(frozen=True)
class NewMessage:
    """A message to store on a ticket's timeline (inbound, outbound, note)."""

    channel: str
    direction: Direction
    external_id: str
    body_text: str
    created_at: datetime
    customer_id: int | None = None
    sender_identity_id: int | None = None
    author_agent_id: int | None = None
    sender_name: str | None = None
    subject: str | None = None
    body_html: str | None = None
    quoted_text: str | None = None
    raw_ref: str | None = None
    auto_kind: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    keywords: tuple[str, ...] = ()
    """More text the message is found by: the sender's addresses and numbers, the new ticket's reference."""

    def search_terms(self) -> list[str]:
        """What search finds this message by (`router.core.search`): its subject, text, keywords, sender."""
        return document_terms((self.subject, self.body_text, *self.keywords), names=(self.sender_name,))

    def args(self, events: Sequence[Event]) -> tuple[Any, ...]:
        """Parameters $2-$18 of `_MESSAGE_INSERT`."""
        return (self.customer_id, self.channel, self.direction, self.external_id, self.sender_identity_id,
                self.author_agent_id, self.sender_name, self.subject, self.body_text, self.body_html,
                self.quoted_text, self.raw_ref, self.auto_kind, dict(self.metadata), self.created_at,
                [kind for kind, _ in events], [payload for _, payload in events])


@dataclass(frozen=True)
class Stored:
    """A message stored on a ticket. `message_id` None: the channel already had this external id (a
    redelivery). `before` is the ticket as the message found it, `after` as it left it."""

    message_id: int | None
    before: Ticket
    after: Ticket


_MESSAGE_INSERT = (
    " m AS (INSERT INTO messages (ticket_id, customer_id, channel, direction, external_id,"
    "  sender_identity_id, author_agent_id, sender_name, subject, body_text, body_html, quoted_text, raw_ref,"
    "  auto_kind, metadata, created_at, search_terms)"
    "  SELECT {ticket}, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, {terms}::text[] {source}"
    "  ON CONFLICT (channel, external_id) DO NOTHING RETURNING id, ticket_id),"
    " e AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
    "  SELECT m.ticket_id, x.kind, x.payload || jsonb_build_object('message_id', m.id), $16"
    "  FROM m, unnest($17::text[], $18::jsonb[]) AS x(kind, payload))"
)
"""The message and its events, as CTEs `m` and `e` (parameters $2-$18, the ticket and the search terms
parameter from the caller)."""

_CUSTOMER_WROTE = (
    "last_customer_message_at = $16, updated_at = $16, status = 'open', solved_at = NULL,"
    " priority = CASE WHEN array_position($19::text[], $20::text) > array_position($19::text[], tickets.priority)"
    "  THEN $20 ELSE tickets.priority END"
)
"""The one definition of "the customer wrote on this ticket": it is open (a pending ticket comes
back, a solved one reopens) and takes the message's priority when that is higher ($19 the
priority order, $20 the message's priority)."""


async def join_active_ticket(conn: asyncpg.Connection, customer_id: int, priority: Priority, message: NewMessage,
                             events: Sequence[Event]) -> Stored | None:
    """The most common message of all: a follow-up while the customer has an active ticket. One
    statement locks that ticket, applies `_CUSTOMER_WROTE`, and stores the message with its
    events. None when the customer has no active ticket: then the general threading rules
    (`choose_thread`) decide."""
    row = await conn.fetchrow(
        "WITH cand AS (SELECT id, status, priority FROM tickets WHERE customer_id = $1"
        "  AND status IN ('open', 'pending') ORDER BY created_at DESC LIMIT 1 FOR UPDATE),"
        f" t AS (UPDATE tickets SET {_CUSTOMER_WROTE} FROM cand WHERE tickets.id = cand.id RETURNING {_QUALIFIED},"
        "  cand.status AS previous_status, cand.priority AS previous_priority),"
        + _MESSAGE_INSERT.format(ticket="t.id", terms="$21", source="FROM t")
        + " SELECT (SELECT id FROM m) AS inserted_message_id, t.* FROM t",
        customer_id, *message.args(events), list(PRIORITIES), priority, message.search_terms())
    if row is None:
        return None
    after = Ticket.from_row(row)
    before = dataclasses.replace(after, status=row["previous_status"], priority=row["previous_priority"])
    return Stored(row["inserted_message_id"], before, after)


async def insert_message(conn: asyncpg.Connection, ticket: Ticket, message: NewMessage, events: Sequence[Event], *,
                         customer_wrote: Priority | None = None) -> Stored:
    """Store a message and its events (each payload gets the new `message_id`) on a ticket the
    caller has locked; with `customer_wrote` (the message's priority), also `_CUSTOMER_WROTE` —
    in one statement, one round trip."""
    row = await conn.fetchrow(
        f"WITH t AS (UPDATE tickets SET {_CUSTOMER_WROTE} WHERE id = $1 AND $21 RETURNING {COLUMNS}),"
        + _MESSAGE_INSERT.format(ticket="$1::bigint", terms="$22", source="")
        + " SELECT (SELECT id FROM m) AS inserted_message_id, t.* FROM (SELECT 1) AS one LEFT JOIN t ON true",
        ticket.id, *message.args(events), list(PRIORITIES), customer_wrote, customer_wrote is not None,
        message.search_terms())
    after = Ticket.from_row(row) if customer_wrote is not None else ticket
    return Stored(row["inserted_message_id"], ticket, after)


async def by_id_for_update(conn: asyncpg.Connection, ticket_id: int) -> Ticket | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE", ticket_id)
    return Ticket.from_row(row) if row else None


async def by_number(conn: asyncpg.Connection, number: int, *, lock: bool = False) -> Ticket | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM tickets WHERE number = $1{' FOR UPDATE' if lock else ''}",
                              number)
    return Ticket.from_row(row) if row else None


async def _hinted_ticket(conn: asyncpg.Connection, customer_id: int, thread_refs: tuple[str, ...],
                         number_hint: int | None) -> Ticket | None:
    """A ticket the message names. By Message-ID: one of our outbound mails (their ids are HMACs,
    unguessable, so a colleague replying to our mail joins that ticket), or one of this customer's
    own mails. By `T-n` in the subject or address (guessable): only this customer's tickets."""
    if thread_refs:
        ticket_id = await conn.fetchval(
            "SELECT ticket_id FROM messages WHERE channel = 'email' AND external_id = ANY($1::text[])"
            " AND (direction = 'out' OR customer_id = $2) ORDER BY id DESC LIMIT 1", list(thread_refs), customer_id)
        if ticket_id is not None:
            return await by_id_for_update(conn, ticket_id)
    if number_hint is not None:
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM tickets WHERE number = $1 AND customer_id = $2 FOR UPDATE",
                                  number_hint, customer_id)
        return Ticket.from_row(row) if row else None
    return None


ThreadAction = Literal["join", "reopen", "new"]


@dataclass(frozen=True)
class ThreadChoice:
    """Where a message goes: join/reopen `ticket`, or start a new one (linked to `previous_ticket_id`)."""

    action: ThreadAction
    ticket: Ticket | None
    previous_ticket_id: int | None = None


async def choose_thread(conn: asyncpg.Connection, customer_id: int, *, thread_refs: tuple[str, ...],
                        number_hint: int | None, now: datetime, reopen_window: timedelta,
                        new_customer: bool = False) -> ThreadChoice:
    """SPEC §2.5: the named ticket if it is active, else the customer's active ticket (any channel),
    else reopen the named or latest solved ticket within the reopen window, else a new ticket linked
    to the last one. A customer never gets a second active ticket. The chosen ticket is locked."""
    hinted = None
    if thread_refs or number_hint is not None:
        hinted = await _hinted_ticket(conn, customer_id, thread_refs, number_hint)
        if hinted is not None and hinted.active:
            return ThreadChoice("join", hinted)
    own = None
    if not new_customer:
        # Active first, then the most recently solved, then the latest (closed) one: one query.
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM tickets WHERE customer_id = $1"
            " ORDER BY status IN ('open', 'pending') DESC, status = 'solved' DESC,"
            " COALESCE(solved_at, created_at) DESC LIMIT 1 FOR UPDATE", customer_id)
        own = Ticket.from_row(row) if row else None
        if own is not None and own.active:
            return ThreadChoice("join", own)
    # A named solved ticket decides (reopen, or a new ticket linked to it when too old); a named
    # closed one (e.g. merged into another thread) does not: the customer's latest does.
    candidate = hinted if hinted is not None and hinted.status == "solved" else (own or hinted)
    if candidate is None:
        return ThreadChoice("new", None)
    if candidate.status == "solved" and candidate.solved_at is not None and now - candidate.solved_at <= reopen_window:
        return ThreadChoice("reopen", candidate)
    return ThreadChoice("new", None, previous_ticket_id=candidate.id)


async def create(conn: asyncpg.Connection, new: NewTicket, now: datetime) -> Ticket:
    row = await conn.fetchrow(
        "INSERT INTO tickets (customer_id, channel, subject, status, priority, topic, skill, language,"
        " team_id, sla_policy, previous_ticket_id, last_customer_message_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT id FROM teams WHERE name = $9), $10, $11, $12, $12, $12)"
        f" RETURNING {COLUMNS}",
        new.customer_id, new.channel, new.subject, new.status, new.priority, new.topic, new.skill, new.language,
        new.team, new.sla_policy, new.previous_ticket_id, now)
    return Ticket.from_row(row)


@dataclass(frozen=True)
class Seen:
    """A stored message found by its platform id, and who sent it."""

    message_id: int
    ticket_id: int
    number: int
    sender: tuple[str, str] | None  # (kind, value) of the sending identity


async def find_message(conn: asyncpg.Connection, channel: str, external_id: str) -> Seen | None:
    row = await conn.fetchrow(
        "SELECT m.id, m.ticket_id, t.number, ci.kind, ci.value FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " LEFT JOIN customer_identities ci ON ci.id = m.sender_identity_id"
        " WHERE m.channel = $1 AND m.external_id = $2", channel, external_id)
    if row is None:
        return None
    sender = (row["kind"], row["value"]) if row["kind"] is not None else None
    return Seen(row["id"], row["ticket_id"], row["number"], sender)


async def set_status(conn: asyncpg.Connection, ticket_id: int, status: Status, now: datetime) -> None:
    await conn.execute(
        "UPDATE tickets SET status = $2, updated_at = $3,"
        " solved_at = CASE WHEN $2 = 'solved' THEN $3 WHEN $2 IN ('open', 'pending') THEN NULL"
        " ELSE solved_at END WHERE id = $1", ticket_id, status, now)


async def set_priority(conn: asyncpg.Connection, ticket_id: int, priority: Priority, now: datetime) -> Ticket:
    row = await conn.fetchrow(f"UPDATE tickets SET priority = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}",
                              ticket_id, priority, now)
    return Ticket.from_row(row)


async def set_sla_policy(conn: asyncpg.Connection, ticket_id: int, policy: str) -> None:
    await conn.execute("UPDATE tickets SET sla_policy = $2 WHERE id = $1", ticket_id, policy)


async def touch(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    """Something happened on the ticket (a note): it moves up the inbox."""
    await conn.execute("UPDATE tickets SET updated_at = $2 WHERE id = $1", ticket_id, now)


async def agent_replied(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE tickets SET last_agent_reply_at = $2, updated_at = $2,"
        " first_responded_at = COALESCE(first_responded_at, $2) WHERE id = $1", ticket_id, now)


async def active_for_update(conn: asyncpg.Connection, customer_id: int) -> list[Ticket]:
    """The customer's active tickets, oldest first, locked (in that order)."""
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM tickets WHERE customer_id = $1"
                            " AND status IN ('open', 'pending') ORDER BY created_at, id FOR UPDATE", customer_id)
    return [Ticket.from_row(row) for row in rows]


async def move_customer(conn: asyncpg.Connection, from_customer: int, to_customer: int) -> None:
    """A customer merge: their tickets and messages now belong to the survivor."""
    await conn.execute("UPDATE tickets SET customer_id = $1 WHERE customer_id = $2", to_customer, from_customer)
    await conn.execute("UPDATE messages SET customer_id = $1 WHERE customer_id = $2", to_customer, from_customer)


async def repoint_senders(conn: asyncpg.Connection, moves: Sequence[tuple[int, int]]) -> None:
    """Messages sent from identity `old` now name identity `new` (a customer merge drops duplicates)."""
    if moves:
        await conn.execute(
            "UPDATE messages m SET sender_identity_id = x.new FROM unnest($1::bigint[], $2::bigint[]) AS x(old, new)"
            " WHERE m.sender_identity_id = x.old", [old for old, _ in moves], [new for _, new in moves])


async def fold_into(conn: asyncpg.Connection, thread_id: int, other_id: int, now: datetime) -> None:
    """Move every message of ticket `other_id` into `thread_id`, and close `other_id` unassigned."""
    await conn.execute("UPDATE messages SET ticket_id = $1 WHERE ticket_id = $2", thread_id, other_id)
    await conn.execute("UPDATE tickets SET status = 'closed', assignee_id = NULL, updated_at = $2 WHERE id = $1",
                       other_id, now)


async def reply_destination(conn: asyncpg.Connection, ticket: Ticket) -> str:
    """The channel of the customer's latest real (not automated) inbound message on the ticket."""
    channel = await conn.fetchval(
        "SELECT channel FROM messages WHERE ticket_id = $1 AND direction = 'in' AND auto_kind IS NULL"
        " ORDER BY created_at DESC, id DESC LIMIT 1", ticket.id)
    return channel or ticket.channel


async def email_thread(conn: asyncpg.Connection, ticket_id: int) -> list[tuple[str, Direction]]:
    """(Message-ID, direction) of the ticket's mails in order, for In-Reply-To and References."""
    rows = await conn.fetch(
        "SELECT external_id, direction FROM messages WHERE ticket_id = $1 AND channel = 'email'"
        " AND external_id NOT LIKE 'sha256:%' ORDER BY created_at, id", ticket_id)
    return [(row["external_id"], row["direction"]) for row in rows]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def detail(conn: asyncpg.Connection, ticket: Ticket, clocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ticket as the inbox shows it: every message across channels, SLA clocks, routing log."""
    messages = await conn.fetch(
        "SELECT m.id, m.channel, m.direction, m.sender_name, m.subject, m.body_text, m.body_html, m.quoted_text,"
        " m.auto_kind, m.created_at, a.email AS author, o.status AS delivery_status, o.last_error AS delivery_error,"
        " o.attempts AS delivery_attempts,"
        " COALESCE(json_agg(json_build_object('filename', f.filename, 'content_type', f.content_type,"
        " 'size', f.size, 'sha256', f.sha256, 'inline', f.inline)) FILTER (WHERE f.id IS NOT NULL), '[]')"
        " AS attachments"
        " FROM messages m LEFT JOIN agents a ON a.id = m.author_agent_id"
        " LEFT JOIN attachments f ON f.message_id = m.id"
        " LEFT JOIN outbox o ON o.id = (m.metadata->>'outbox_id')::bigint"
        " WHERE m.ticket_id = $1 GROUP BY m.id, a.email, o.id ORDER BY m.created_at, m.id", ticket.id)
    routing = await conn.fetch(
        "SELECT r.action, r.reason, r.created_at, a.email AS agent, b.email AS actor FROM routing_log r"
        " LEFT JOIN agents a ON a.id = r.agent_id LEFT JOIN agents b ON b.id = r.actor_id"
        " WHERE r.ticket_id = $1 ORDER BY r.id", ticket.id)
    names = await conn.fetchrow(
        "SELECT c.name AS customer_name, tm.name AS team, a.email AS assignee,"
        " (SELECT number FROM tickets p WHERE p.id = $4) AS previous_number"
        " FROM customers c LEFT JOIN teams tm ON tm.id = $2 LEFT JOIN agents a ON a.id = $3 WHERE c.id = $1",
        ticket.customer_id, ticket.team_id, ticket.assignee_id, ticket.previous_ticket_id)
    return {
        "ref": ticket.ref,
        "status": ticket.status,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "subject": ticket.subject,
        "topic": ticket.topic,
        "skill": ticket.skill,
        "language": ticket.language,
        "team": names["team"],
        "assignee": names["assignee"],
        "customer": {"id": ticket.customer_id, "name": names["customer_name"]},
        "previous_ticket": ref(names["previous_number"]) if names["previous_number"] else None,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "sla": {"policy": ticket.sla_policy, "first_responded_at": iso(ticket.first_responded_at), "clocks": clocks},
        "messages": [{
            "id": m["id"], "channel": m["channel"], "direction": m["direction"], "sender_name": m["sender_name"],
            "author": m["author"], "subject": m["subject"], "text": m["body_text"], "html": m["body_html"],
            "quoted_text": m["quoted_text"], "auto_kind": m["auto_kind"], "created_at": iso(m["created_at"]),
            "attachments": m["attachments"],
            # Outbound only: queued ("pending"), "sent", or "dead" with the reason — a reply that could
            # not go out is visible to the agent, never silent.
            "delivery": {"status": m["delivery_status"], "attempts": m["delivery_attempts"],
                         "error": m["delivery_error"]} if m["delivery_status"] else None,
        } for m in messages],
        "routing_log": [{"action": r["action"], "reason": r["reason"], "agent": r["agent"], "actor": r["actor"],
                         "at": iso(r["created_at"])} for r in routing],
    }

