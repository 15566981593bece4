"""Notes agents keep about a customer: the only writer of `customer_notes`.

A note stays on the customer record it was written on. A customer's notes are theirs and those of
every record merged into them (`customers.merged_into`, followed through chains of merges), so a
merge shows everything colleagues wrote and undoing it moves nothing back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

MAX_NOTE_CHARS = 5000
"""Also a CHECK on the column (migration 0010)."""


@dataclass(frozen=True)
class CustomerNote:
    id: int
    customer_id: int  # the record it was written on: another one when that record was merged in
    body: str
    author_name: str | None
    author_email: str | None
    created_at: datetime


async def survivor(conn: asyncpg.Connection, customer_id: int) -> int | None:
    """The record `customer_id` lives on now (itself, or the one it was merged into), locked so a
    concurrent merge waits for the note; None when there is no such customer."""
    row = await conn.fetchrow(
        "WITH RECURSIVE chain(id, merged_into, depth) AS ("
        " SELECT id, merged_into, 0 FROM customers WHERE id = $1"
        " UNION ALL SELECT c.id, c.merged_into, chain.depth + 1 FROM customers c JOIN chain ON c.id = chain.merged_into"
        "  WHERE chain.depth < 50)"
        " SELECT id FROM customers WHERE id = (SELECT id FROM chain WHERE merged_into IS NULL) FOR UPDATE", customer_id)
    return row["id"] if row else None


async def add(conn: asyncpg.Connection, customer_id: int, author_agent_id: int | None, body: str,
              now: datetime) -> int:
    note_id: int = await conn.fetchval(
        "INSERT INTO customer_notes (customer_id, author_agent_id, body, created_at) VALUES ($1, $2, $3, $4)"
        " RETURNING id", customer_id, author_agent_id, body, now)
    return note_id


async def for_customer(conn: asyncpg.Connection, customer_id: int, limit: int = 100) -> list[CustomerNote]:
    """The customer's notes and those of the records merged into them, newest first."""
    rows = await conn.fetch(
        "WITH RECURSIVE family(id, depth) AS (SELECT $1::bigint, 0"
        " UNION ALL SELECT c.id, family.depth + 1 FROM customers c JOIN family ON c.merged_into = family.id"
        "  WHERE family.depth < 50)"
        " SELECT n.id, n.customer_id, n.body, n.created_at, a.name AS author_name, a.email AS author_email"
        " FROM customer_notes n JOIN family f ON f.id = n.customer_id LEFT JOIN agents a ON a.id = n.author_agent_id"
        " ORDER BY n.created_at DESC, n.id DESC LIMIT $2", customer_id, limit)
    return [CustomerNote(**dict(row)) for row in rows]
