"""Canned responses added in `/admin`: the only writer of `canned_responses`.

The ones in router.toml (`[[canned]]`) live in the config, not here; `available` merges both for the
reply box. Permission checks and validation are the actions' job (`router.core.actions.admin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from router.config import CannedResponse
from router.core.canned import Canned

_COLUMNS = "id, name, text, language"


def _canned(row: asyncpg.Record) -> Canned:
    return Canned(id=row["id"], name=row["name"], text=row["text"], language=row["language"], source="admin")


def _order(item: Canned) -> tuple[str, str, int]:
    return item.name.casefold(), item.language or "", 0 if item.source == "config" else 1


async def available(conn: asyncpg.Connection, configured: Sequence[CannedResponse],
                    language: str | None) -> list[Canned]:
    """What an agent may insert on a ticket in `language`: the ones for that language and the ones
    for any language, from router.toml and from `/admin`, sorted by name. A ticket whose language
    is unknown (None) is offered every response."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM canned_responses"
                            " WHERE $1::text IS NULL OR language IS NULL OR language = $1", language)
    found = [Canned(id=None, name=c.name, text=c.text, language=c.language, source="config")
             for c in configured if language is None or c.language in (None, language)]
    found += [_canned(row) for row in rows]
    return sorted(found, key=_order)


async def list_all(conn: asyncpg.Connection) -> list[Canned]:
    """Every response added in `/admin`, by name then language."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM canned_responses ORDER BY lower(name), language NULLS FIRST, id")
    return [_canned(row) for row in rows]


async def get(conn: asyncpg.Connection, canned_id: int, *, lock: bool = False) -> Canned | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM canned_responses WHERE id = $1"
                              f"{' FOR UPDATE' if lock else ''}", canned_id)
    return _canned(row) if row else None


async def create(conn: asyncpg.Connection, *, name: str, text: str, language: str | None, actor_id: int | None,
                 now: datetime) -> int | None:
    """The new response's id, or None when one with this name and language exists already."""
    canned_id: int | None = await conn.fetchval(
        "INSERT INTO canned_responses (name, text, language, created_by, updated_by, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $4, $5, $5)"
        " ON CONFLICT (lower(name), COALESCE(language, '')) DO NOTHING RETURNING id",
        name, text, language, actor_id, now)
    return canned_id


async def update(conn: asyncpg.Connection, canned_id: int, *, name: str, text: str, language: str | None,
                 actor_id: int | None, now: datetime) -> bool:
    """False when another response already has this name and language (nothing changed)."""
    try:
        async with conn.transaction():  # a savepoint: the clash is answered, the caller's work goes on
            await conn.execute(
                "UPDATE canned_responses SET name = $2, text = $3, language = $4, updated_by = $5, updated_at = $6"
                " WHERE id = $1", canned_id, name, text, language, actor_id, now)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def delete(conn: asyncpg.Connection, canned_id: int) -> bool:
    """False when there was no such response."""
    result: str = await conn.execute("DELETE FROM canned_responses WHERE id = $1", canned_id)
    return result != "DELETE 0"
