"""Who has a ticket open in the inbox, and who is typing a reply: the only writer of `inbox_presence`.

A row per open page, refreshed by the page while it stays open, so presence is shared by every
process through the database and nothing is kept in one process's memory. Rows past `expires_at`
no longer count; they are deleted by the next write, whoever makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, order=True)
class Viewer:
    """An agent with the ticket open; `typing` while they write a reply or note."""

    name: str
    agent_id: int
    typing: bool


async def mark(conn: asyncpg.Connection, ticket_id: int, agent_id: int, page: str, *, typing: bool,
               now: datetime, expires_at: datetime, typing_until: datetime) -> None:
    """The page `page` of `agent_id` shows the ticket until `expires_at` (unless marked again), its agent
    typing until `typing_until` when `typing`. Expired rows, anyone's, are cleared on the way (a few at a
    time, skipping rows another write holds, so heartbeats never wait for each other)."""
    await conn.execute(
        "WITH gone AS (DELETE FROM inbox_presence WHERE (ticket_id, agent_id, page) IN ("
        "   SELECT ticket_id, agent_id, page FROM inbox_presence WHERE expires_at <= $4"
        "   AND (ticket_id, agent_id, page) <> ($1, $2, $3) LIMIT 100 FOR UPDATE SKIP LOCKED))"
        " INSERT INTO inbox_presence (ticket_id, agent_id, page, typing_until, expires_at)"
        " VALUES ($1, $2, $3, CASE WHEN $5 THEN $7::timestamptz END, $6)"
        " ON CONFLICT (ticket_id, agent_id, page) DO UPDATE"
        " SET typing_until = excluded.typing_until, expires_at = excluded.expires_at",
        ticket_id, agent_id, page, now, typing, expires_at, typing_until)


async def leave(conn: asyncpg.Connection, ticket_id: int, agent_id: int, page: str) -> None:
    """The page was closed: its agent no longer counts as viewing (unless another page of theirs does)."""
    await conn.execute("DELETE FROM inbox_presence WHERE ticket_id = $1 AND agent_id = $2 AND page = $3",
                       ticket_id, agent_id, page)


async def on_tickets(conn: asyncpg.Connection, numbers: Sequence[int], now: datetime) -> dict[int, tuple[Viewer, ...]]:
    """Who has each of the tickets `numbers` open right now, by ticket number, sorted by name; an agent
    with several pages open counts once, typing if they type in any of them. Tickets nobody views are
    absent."""
    rows = await conn.fetch(
        "SELECT t.number, p.agent_id, a.name, coalesce(bool_or(p.typing_until > $2), false) AS typing"
        " FROM tickets t JOIN inbox_presence p ON p.ticket_id = t.id JOIN agents a ON a.id = p.agent_id"
        " WHERE t.number = ANY($1::bigint[]) AND p.expires_at > $2"
        " GROUP BY t.number, p.agent_id, a.name", list(numbers), now)
    found: dict[int, list[Viewer]] = {}
    for row in rows:
        found.setdefault(row["number"], []).append(Viewer(row["name"], row["agent_id"], row["typing"]))
    return {number: tuple(sorted(viewers)) for number, viewers in found.items()}
