"""The outbox table: everything we send (acks, replies, surveys, Slack alerts) is a row first.

The only writer of `outbox` (the SLA monitor's alert CTE aside, see `sla.monitor`). Queueing an
outbound message also records it on the ticket's timeline and its event, in one statement, so the
timeline and the delivery queue can never disagree. Delivery itself is `core.outbound`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from router.core.search import document_terms
from router.core.store import events

LEASE = timedelta(minutes=2)
BATCH = 20


async def enqueue(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, payload: dict[str, Any],
                  now: datetime, ticket_id: int | None = None, customer_id: int | None = None) -> int | None:
    """Queue an item; returns its id, or None when an item with this key already exists."""
    item_id: int | None = await conn.fetchval(
        "INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, customer_id, payload, created_at,"
        " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        key, kind, channel, ticket_id, customer_id, payload, now)
    return item_id


async def queue_message(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, ticket_id: int,
                        customer_id: int | None, external_id: str, subject: str | None, text: str,
                        payload: dict[str, Any], now: datetime, author_agent_id: int | None = None,
                        unless_sent_since: datetime | None = None) -> int | None:
    """Record an outbound message on the ticket, queue its delivery and its event, in one statement.
    Returns the message id, or None when nothing was queued: an item with this key exists (a retried
    request), or `unless_sent_since` is given and the customer got an item of this kind since then
    (rate limit)."""
    message_id: int | None = await conn.fetchval(
        "WITH o AS (INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, customer_id, payload, created_at,"
        "  next_attempt_at)"
        "  SELECT $1, $2, $3, $4, $5, $6, $7, $7 WHERE $11::timestamptz IS NULL OR NOT EXISTS ("
        "   SELECT 1 FROM outbox WHERE customer_id = $5 AND kind = $2 AND created_at > $11)"
        "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id),"
        " m AS (INSERT INTO messages (ticket_id, customer_id, channel, direction, external_id, author_agent_id,"
        "  subject, body_text, metadata, created_at, search_terms)"
        "  SELECT $4, $5, $3, 'out', $8, $9, $10, $12, jsonb_build_object('kind', $2::text, 'outbox_id', o.id), $7,"
        "  $13::text[]"
        "  FROM o RETURNING id),"
        " e AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
        "  SELECT $4, 'message.sent', jsonb_build_object('message_id', m.id, 'kind', $2::text), $7 FROM m)"
        " SELECT id FROM m",
        key, kind, channel, ticket_id, customer_id, payload, now, external_id, author_agent_id, subject,
        unless_sent_since, text,
        # What agents wrote is searchable; acknowledgements say the same on every ticket, so they are not.
        document_terms((subject, text)) if author_agent_id is not None else [])
    return message_id


INTERRUPTED = ("interrupted while sending (the process stopped): it may or may not have arrived,"
               " so it is not sent again by itself")


async def lease(conn: asyncpg.Connection, channels: Sequence[str], now: datetime) -> list[dict[str, Any]]:
    """Take up to `BATCH` due items on `channels` (status `sending` until their outcome is recorded).
    Items whose lease ended while `sending` were interrupted: they go dead, never out again."""
    interrupted = await conn.fetch(
        "UPDATE outbox SET status = 'dead', last_error = $3 WHERE id IN ("
        " SELECT id FROM outbox WHERE status = 'sending' AND next_attempt_at <= $1 AND channel = ANY($2::text[])"
        " FOR UPDATE SKIP LOCKED) RETURNING id, ticket_id, kind", now, list(channels), INTERRUPTED)
    for row in interrupted:
        await events.record(conn, row["ticket_id"], "outbox.dead",
                            {"id": row["id"], "kind": row["kind"], "error": INTERRUPTED}, now)
    rows = await conn.fetch(
        "UPDATE outbox SET status = 'sending', next_attempt_at = $2, attempts = attempts + 1 WHERE id IN ("
        " SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1"
        " AND channel = ANY($3::text[]) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, idempotency_key, kind, channel, ticket_id, payload, attempts",
        now, now + LEASE, list(channels), BATCH)
    return [dict(row) for row in rows]


async def mark_sent(conn: asyncpg.Connection, item_id: int, ticket_id: int | None, kind: str, now: datetime) -> None:
    await conn.execute("UPDATE outbox SET status = 'sent', sent_at = $2, last_error = NULL WHERE id = $1",
                       item_id, now)
    await events.record(conn, ticket_id, "outbox.sent", {"id": item_id, "kind": kind}, now)


async def retry_later(conn: asyncpg.Connection, item_id: int, error: str, retry_at: datetime) -> None:
    """The platform asked us to wait: pending again at `retry_at`, and the attempt is not counted
    (being told to slow down is not the item's failure)."""
    await conn.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $2, last_error = $3,"
        " attempts = GREATEST(attempts - 1, 0) WHERE id = $1", item_id, retry_at, error[:2000])


async def mark_failed(conn: asyncpg.Connection, item_id: int, ticket_id: int | None, kind: str, error: str, *,
                      dead: bool, retry_at: datetime, now: datetime) -> None:
    await conn.execute(
        "UPDATE outbox SET status = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
        item_id, "dead" if dead else "pending", retry_at, error[:2000])
    if dead:
        await events.record(conn, ticket_id, "outbox.dead", {"id": item_id, "kind": kind, "error": error[:500]}, now)


async def retry_dead(conn: asyncpg.Connection, item_id: int, now: datetime) -> dict[str, Any] | None:
    """A person sends a dead item again: pending, due now, with a fresh run of attempts. Returns its
    id, ticket_id, kind and channel, or None when it is not dead (sent, pending, gone). An item that
    died "interrupted" may have arrived already: this retry is a person's decision to risk a duplicate."""
    row = await conn.fetchrow(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2 WHERE id = $1 AND status = 'dead'"
        " RETURNING id, ticket_id, kind, channel", item_id, now)
    return dict(row) if row else None
