"""The event stream: one row per thing that happened to a ticket.

The audit trail and live updates read the same rows (by increasing id), so there is one event
path. Events are deliberately not announced with a per-row NOTIFY: PostgreSQL serialises the
commits of notifying transactions, which cost the ingest pipeline 15-18 % of its throughput
(measured with `make bench`); a reader polls `events` by id, or one announcer per process can
NOTIFY outside the ingest transactions. The reads below serve `router.live`, that one reader per
process, and the pages catching up after a reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


async def record(conn: asyncpg.Connection, ticket_id: int | None, kind: str, payload: dict[str, Any],
                 now: datetime) -> None:
    await conn.execute(
        "INSERT INTO events (ticket_id, kind, payload, created_at) VALUES ($1, $2, $3, $4)",
        ticket_id, kind, payload, now,
    )


@dataclass(frozen=True)
class Seen:
    """An event as live updates see it: which ticket (by number) and what happened, not its payload."""

    id: int
    kind: str
    ticket_number: int | None


_SEEN = "SELECT e.id, e.kind, t.number FROM events e LEFT JOIN tickets t ON t.id = e.ticket_id"


def _seen(rows: list[asyncpg.Record]) -> list[Seen]:
    return [Seen(row["id"], row["kind"], row["number"]) for row in rows]


async def latest_id(conn: asyncpg.Connection) -> int:
    """The largest event id committed so far (0 for none): where a follower starts."""
    found: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
    return found


async def following(conn: asyncpg.Connection, after: int, limit: int, also: Sequence[int] = ()) -> list[Seen]:
    """The first `limit` events after id `after`, in id order, plus those among the ids `also` (lower
    ids a follower gave up waiting for) that have become visible since. One round trip either way."""
    if not also:
        return _seen(await conn.fetch(f"{_SEEN} WHERE e.id > $1 ORDER BY e.id LIMIT $2", after, limit))
    return _seen(await conn.fetch(
        f"({_SEEN} WHERE e.id > $1 ORDER BY e.id LIMIT $2) UNION ALL ({_SEEN} WHERE e.id = ANY($3::bigint[]))"
        " ORDER BY id", after, limit, list(also)))


async def between(conn: asyncpg.Connection, after: int, upto: int, limit: int) -> list[Seen]:
    """Events with `after` < id <= `upto`, in id order, at most `limit` of them: a page catching up."""
    return _seen(await conn.fetch(f"{_SEEN} WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id LIMIT $3",
                                  after, upto, limit))
