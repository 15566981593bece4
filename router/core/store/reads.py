"""Which tickets each agent has read: the only writer of `ticket_reads`.

A ticket is unread for an agent while its `last_customer_message_at` is later than the agent's
`read_at` (or the agent never opened it); the inbox list computes that with one indexed lookup per row.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def mark_read(conn: asyncpg.Connection, agent_id: int, ticket_id: int, now: datetime) -> None:
    """Record that `agent_id` has seen `ticket_id` as of `now` (never moves the mark backwards)."""
    await conn.execute(
        "INSERT INTO ticket_reads (agent_id, ticket_id, read_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (agent_id, ticket_id) DO UPDATE SET read_at = GREATEST(ticket_reads.read_at,"
        " EXCLUDED.read_at)",
        agent_id, ticket_id, now)
