"""Figures for the admin channel status page: last message received per channel, outbox backlog and
dead items. Reads only; `messages` and `outbox` keep their own writers (`tickets`, `outbox`).

Every query rides an index, so the page stays fast with millions of messages: inbound channels come
from a skip scan of `messages_inbound_latest` (0008), the outbox figures from its partial indexes on
pending, sending and dead items, whatever the number of items ever sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

DEAD_SHOWN = 50
"""The newest dead items listed; the page says how many there are in all."""


@dataclass(frozen=True)
class Backlog:
    pending: int = 0
    sending: int = 0
    dead: int = 0
    oldest_pending: datetime | None = None


@dataclass(frozen=True)
class DeadItem:
    id: int
    channel: str
    kind: str
    ticket_number: int | None
    recipient: str | None
    attempts: int
    last_error: str | None
    created_at: datetime


async def last_received(conn: asyncpg.Connection, channels: Sequence[str]) -> dict[str, datetime]:
    """When each channel last received a message: `channels`, and any other channel that ever did
    (the integration API accepts any channel name). A channel that never did is absent."""
    rows = await conn.fetch(
        "WITH RECURSIVE seen(channel) AS ("
        "  (SELECT channel FROM messages WHERE direction = 'in' ORDER BY channel LIMIT 1)"
        "  UNION ALL"
        "  SELECT (SELECT m.channel FROM messages m WHERE m.direction = 'in' AND m.channel > seen.channel"
        "          ORDER BY m.channel LIMIT 1) FROM seen WHERE seen.channel IS NOT NULL),"
        " wanted AS (SELECT channel FROM seen WHERE channel IS NOT NULL UNION SELECT unnest($1::text[]))"
        " SELECT w.channel, (SELECT max(m.created_at) FROM messages m"
        "                     WHERE m.channel = w.channel AND m.direction = 'in') AS latest FROM wanted w",
        list(channels))
    return {row["channel"]: row["latest"] for row in rows if row["latest"] is not None}


async def outbox_backlog(conn: asyncpg.Connection) -> dict[str, Backlog]:
    """Per channel: items waiting, being sent right now, and dead (given up, waiting for a person)."""
    rows = await conn.fetch(
        "SELECT channel, count(*) FILTER (WHERE status = 'pending') AS pending,"
        " count(*) FILTER (WHERE status = 'sending') AS sending, count(*) FILTER (WHERE status = 'dead') AS dead,"
        " min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending"
        " FROM outbox WHERE status IN ('pending', 'sending', 'dead') GROUP BY channel")
    return {row["channel"]: Backlog(row["pending"], row["sending"], row["dead"], row["oldest_pending"])
            for row in rows}


async def dead_items(conn: asyncpg.Connection, limit: int = DEAD_SHOWN) -> list[DeadItem]:
    """The newest dead items, with the error that killed them and the ticket they belong to."""
    rows = await conn.fetch(
        "SELECT o.id, o.channel, o.kind, t.number AS ticket_number, o.payload ->> 'to' AS recipient, o.attempts,"
        " o.last_error, o.created_at FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id"
        " WHERE o.status = 'dead' ORDER BY o.id DESC LIMIT $1", limit)
    return [DeadItem(**dict(row)) for row in rows]
