"""The event stream: one row per thing that happened to a ticket, announced by NOTIFY on commit.

The web inbox's live updates and the audit trail read the same rows, so there is one event path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

CHANNEL = "router_events"


async def record(conn: asyncpg.Connection, ticket_id: int | None, kind: str, payload: dict[str, Any],
                 now: datetime) -> None:
    await conn.execute(
        "INSERT INTO events (ticket_id, kind, payload, created_at) VALUES ($1, $2, $3, $4)",
        ticket_id, kind, payload, now,
    )
