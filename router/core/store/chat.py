"""Live chat conversations: the only writer of `chat_conversations` and `chat_entries`.

Every entry a widget shows (the customer's messages, agents' replies, acknowledgements) gets the
next number of its conversation while the conversation's row is locked, in the transaction that
stores it, and a `pg_notify` on `NOTIFY_CHANNEL` in that same transaction. So entries commit in the
order of their numbers (a widget that saw n has everything below n: it resumes from n), and every
process's listener hears of an entry exactly when it becomes readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from router.core.refs import ref

NOTIFY_CHANNEL = "router_chat"
"""Payload `<conversation id>:<seq>`: the conversation has entries up to seq."""

Author = Literal["customer", "agent", "system"]


@dataclass(frozen=True)
class Entry:
    seq: int
    author: Author
    body: str
    client_id: str | None
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class State:
    """What a connected widget shows besides the entries: the ticket, when its first reply is due, who
    has it, whether they type now."""

    conversation_id: int
    last_seq: int
    ticket_ref: str | None
    first_reply_due: datetime | None
    agent: str | None
    typing: str | None
    """The agent typing a reply on the ticket now (any agent, not only the one who has it)."""
    claimed_email: str | None


@dataclass(frozen=True)
class Reach:
    """Whether the visitor can be reached in the chat now, and where else: for the offline fallback."""

    online_until: datetime | None
    customer_id: int | None
    verified_email: str | None


async def _lock(conn: asyncpg.Connection, visitor_id: str, now: datetime) -> int:
    """The visitor's conversation, created on first use, locked until the transaction ends."""
    conversation_id: int = await conn.fetchval(
        "INSERT INTO chat_conversations (visitor_id, created_at) VALUES ($1, $2)"
        " ON CONFLICT (visitor_id) DO UPDATE SET visitor_id = excluded.visitor_id RETURNING id",
        visitor_id, now)
    return conversation_id


async def _append(conn: asyncpg.Connection, conversation_id: int, *, author: Author, message_id: int,
                  client_id: str | None, body: str, meta: dict[str, Any], ticket_id: int | None,
                  now: datetime) -> int:
    """The next entry of a conversation locked by `_lock`, announced to every process at commit."""
    seq: int = await conn.fetchval(
        "WITH c AS (UPDATE chat_conversations SET last_seq = last_seq + 1, ticket_id = coalesce($7, ticket_id)"
        "  WHERE id = $1 RETURNING id, last_seq)"
        " INSERT INTO chat_entries (conversation_id, seq, author, message_id, client_id, body, meta, created_at)"
        " SELECT c.id, c.last_seq, $2, $3, $4, $5, $6, $8 FROM c RETURNING seq",
        conversation_id, author, message_id, client_id, body, meta, ticket_id, now)
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, f"{conversation_id}:{seq}")
    return seq


async def _logged(conn: asyncpg.Connection, message_id: int) -> int | None:
    seq: int | None = await conn.fetchval("SELECT seq FROM chat_entries WHERE message_id = $1", message_id)
    return seq


async def record_inbound(conn: asyncpg.Connection, visitor_id: str, *, message_id: int, client_id: str,
                         body: str, ticket_id: int | None, now: datetime) -> int:
    """The customer's message (already stored by the pipeline) in their conversation; returns its
    number. A retry of the same message returns the number it got the first time."""
    conversation_id = await _lock(conn, visitor_id, now)
    seq = await _logged(conn, message_id)
    if seq is not None:
        return seq
    return await _append(conn, conversation_id, author="customer", message_id=message_id, client_id=client_id,
                         body=body, meta={}, ticket_id=ticket_id, now=now)


async def record_outbound(conn: asyncpg.Connection, visitor_id: str, *, message_id: int, kind: str, ticket_id: int,
                          text: str, author_agent_id: int | None, now: datetime) -> int:
    """A message to the visitor (an agent's reply, the acknowledgement, a survey) in their conversation,
    in the transaction that queues it. An acknowledgement is queued by the ingest transaction of the
    message it answers, before the chat has numbered that message: the message is numbered first, so
    the widget shows question before answer."""
    conversation_id = await _lock(conn, visitor_id, now)
    meta: dict[str, Any] = {"kind": kind}
    facts = await conn.fetchrow(
        "SELECT t.number, a.name AS agent, s.due_at FROM tickets t"
        " LEFT JOIN agents a ON a.id = $2"
        " LEFT JOIN sla_targets s ON s.ticket_id = t.id AND s.target = 'first_response' AND s.met_at IS NULL"
        " WHERE t.id = $1", ticket_id, author_agent_id)
    if facts is not None:
        meta["ref"] = ref(facts["number"])
        if facts["agent"]:
            meta["agent"] = facts["agent"]
        if kind == "ack" and facts["due_at"] is not None:
            meta["due"] = facts["due_at"].isoformat()
    if kind == "ack":
        question = await conn.fetchrow(
            "SELECT id, body_text, metadata->>'client_id' AS client_id, created_at FROM messages"
            " WHERE ticket_id = $1 AND direction = 'in' AND channel = 'chat' ORDER BY id DESC LIMIT 1", ticket_id)
        if question is not None and await _logged(conn, question["id"]) is None:
            await _append(conn, conversation_id, author="customer", message_id=question["id"],
                          client_id=question["client_id"], body=question["body_text"], meta={},
                          ticket_id=ticket_id, now=question["created_at"])
    author: Author = "agent" if kind == "reply" or author_agent_id is not None else "system"
    return await _append(conn, conversation_id, author=author, message_id=message_id, client_id=None, body=text,
                         meta=meta, ticket_id=ticket_id, now=now)


async def entries_after(conn: asyncpg.Connection, conversation_id: int, after: int, limit: int) -> list[Entry]:
    rows = await conn.fetch(
        "SELECT seq, author, body, client_id, meta, created_at FROM chat_entries"
        " WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", conversation_id, after, limit)
    return [Entry(row["seq"], row["author"], row["body"], row["client_id"], _json(row["meta"]), row["created_at"])
            for row in rows]


def _json(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        decoded = json.loads(value)
        return decoded if isinstance(decoded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


async def open_conversation(conn: asyncpg.Connection, visitor_id: str, now: datetime) -> int:
    """The visitor's conversation id (created when they first connect, so presence has a row)."""
    async with conn.transaction():
        return await _lock(conn, visitor_id, now)


_STATE = (
    "SELECT c.id, c.last_seq, c.claimed_email, t.number, a.name AS agent, s.due_at,"
    " (SELECT w.name FROM inbox_presence p JOIN agents w ON w.id = p.agent_id"
    "   WHERE p.ticket_id = t.id AND p.typing_until > $2 ORDER BY w.name LIMIT 1) AS typing"
    " FROM chat_conversations c LEFT JOIN tickets t ON t.id = c.ticket_id"
    " LEFT JOIN agents a ON a.id = t.assignee_id"
    " LEFT JOIN sla_targets s ON s.ticket_id = t.id AND s.target = 'first_response' AND s.met_at IS NULL"
    " WHERE c.id = ANY($1::bigint[])")


async def states(conn: asyncpg.Connection, conversation_ids: Sequence[int], now: datetime) -> list[State]:
    """The state of many conversations in one read (a process polls those its widgets show)."""
    rows = await conn.fetch(_STATE, list(conversation_ids), now)
    return [State(row["id"], row["last_seq"], ref(row["number"]) if row["number"] is not None else None,
                  row["due_at"], row["agent"], row["typing"], row["claimed_email"]) for row in rows]


async def mark_online(conn: asyncpg.Connection, conversation_ids: Sequence[int], until: datetime) -> None:
    """Widgets are connected to these conversations (this process refreshes it while they stay)."""
    await conn.execute("UPDATE chat_conversations SET online_until = $2 WHERE id = ANY($1::bigint[])"
                       " AND (online_until IS NULL OR online_until < $2)", list(conversation_ids), until)


async def mark_left(conn: asyncpg.Connection, conversation_id: int, now: datetime) -> None:
    """The last widget this process had on the conversation is gone (another process's widget, if
    any, marks it online again within its heartbeat)."""
    await conn.execute("UPDATE chat_conversations SET online_until = $2 WHERE id = $1", conversation_id, now)


async def claim_email(conn: asyncpg.Connection, visitor_id: str, address: str, now: datetime) -> None:
    """The address the visitor typed; their next messages carry it as a claim, never as proof."""
    await conn.execute(
        "INSERT INTO chat_conversations (visitor_id, claimed_email, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (visitor_id) DO UPDATE SET claimed_email = excluded.claimed_email", visitor_id, address, now)


async def visitor_customer(conn: asyncpg.Connection, visitor_id: str) -> int | None:
    """The customer the visitor's chat identity belongs to (None before their first message)."""
    customer_id: int | None = await conn.fetchval(
        "SELECT customer_id FROM customer_identities WHERE kind = 'chat' AND value = $1", visitor_id)
    return customer_id


async def reach(conn: asyncpg.Connection, visitor_id: str) -> Reach:
    row = await conn.fetchrow(
        "SELECT c.online_until, i.customer_id,"
        " (SELECT e.value FROM customer_identities e WHERE e.customer_id = i.customer_id AND e.kind = 'email'"
        "   AND e.verified ORDER BY e.id DESC LIMIT 1) AS email"
        " FROM (SELECT $1::text AS visitor_id) v"
        " LEFT JOIN chat_conversations c ON c.visitor_id = v.visitor_id"
        " LEFT JOIN customer_identities i ON i.kind = 'chat' AND i.value = v.visitor_id", visitor_id)
    return Reach(row["online_until"], row["customer_id"], row["email"])
