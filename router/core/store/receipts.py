"""What the messaging platforms tell us about a customer's conversation on them: delivery receipts
for the messages we sent (the only writer of `delivery_receipts`), and the customer's latest message
on a channel, which decides whether and how we may answer there (`core.channel_rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from router.core.store import events

ReceiptStatus = Literal["delivered", "read", "failed"]
Recorded = Literal["recorded", "duplicate", "unknown"]


@dataclass(frozen=True)
class LatestInbound:
    """The customer's latest real (not automated) message on a channel: when we received it and what
    its channel kept about it (`messages.metadata`, e.g. LINE's reply token)."""

    at: datetime
    metadata: dict[str, Any]


async def latest_inbound(conn: asyncpg.Connection, customer_id: int, channel: str) -> LatestInbound | None:
    """Across all the customer's tickets: a platform's window runs per conversation, not per ticket."""
    row = await conn.fetchrow(
        "SELECT m.created_at, m.metadata FROM tickets t JOIN messages m ON m.ticket_id = t.id"
        " WHERE t.customer_id = $1 AND m.channel = $2 AND m.direction = 'in' AND m.auto_kind IS NULL"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT 1", customer_id, channel)
    return LatestInbound(row["created_at"], row["metadata"] or {}) if row is not None else None


async def record(conn: asyncpg.Connection, *, channel: str, message_ref: str, platform_message_id: str,
                 status: ReceiptStatus, error: str | None, occurred_at: datetime, now: datetime) -> Recorded:
    """Record a platform's receipt for the outbound message whose `external_id` on `channel` is
    `message_ref` (what our sender gave the platform to echo back), with its `message.receipt` event.
    "duplicate": this status was recorded already (a webhook retry); "unknown": not a message we sent."""
    message = await conn.fetchrow(
        "SELECT id, ticket_id FROM messages WHERE channel = $1 AND external_id = $2 AND direction = 'out'",
        channel, message_ref)
    if message is None:
        return "unknown"
    inserted = await conn.fetchval(
        "INSERT INTO delivery_receipts (message_id, status, platform_message_id, error, occurred_at, recorded_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id, status) DO NOTHING RETURNING id",
        message["id"], status, platform_message_id, error, occurred_at, now)
    if inserted is None:
        return "duplicate"
    await events.record(conn, message["ticket_id"], "message.receipt",
                        {"message_id": message["id"], "status": status, "error": error}, now)
    return "recorded"
