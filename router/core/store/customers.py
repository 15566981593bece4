"""Customers and their identities (the only writer of `customers` and `customer_identities`):
resolve a sender to one customer, link proved identities, fold one customer record into another.

What a merge does to tickets, clocks and agents is `core.merge`'s business, not this module's.

Concurrency: identity keys are locked with transaction-scoped advisory locks (in sorted order, so
two transactions never wait on each other in a cycle) before they are looked up, so two messages
from the same new sender cannot create two customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from router.core.errors import Conflict, InvalidInput, NotFound
from router.core.inbound import Identity
from router.core.refs import ref


@dataclass(frozen=True)
class Customer:
    id: int
    name: str | None
    tier: str
    language: str | None
    timezone: str | None
    sender_identity_id: int | None = None
    is_new: bool = False  # created by this message: no tickets to thread into yet
    merge_with: tuple[int, ...] = ()  # other customers the identities prove to be this one


async def resolve(conn: asyncpg.Connection, identities: Sequence[Identity], name: str | None,
                  now: datetime) -> Customer:
    """Find or create the customer behind `identities[0]`, linking every other identity given, and
    lock their row so their messages thread one at a time.

    When the identities belong to different customers, the message proves they are one person:
    the result names the others in `merge_with` (the oldest customer survives) and links nothing
    yet; the caller merges them and resolves again.
    """
    unique = list(dict.fromkeys(identities))
    known = await _lock_known(conn, unique)
    if len(known) == len(unique) and len({row["id"] for row in known.values()}) == 1:
        row = known[unique[0]]
        if row["merged_into"] is None:
            if name and row["name"] is None:
                await conn.execute("UPDATE customers SET name = $2 WHERE id = $1", row["id"], name)
            return _customer(row, name)
    return await _resolve_slow(conn, unique, name, now)


async def _lock_known(conn: asyncpg.Connection, identities: list[Identity]) -> dict[Identity, asyncpg.Record]:
    """The common case in one round trip: every identity is known, and its customer row is locked."""
    rows = await conn.fetch(
        "SELECT ci.id AS identity_id, ci.kind, ci.value, c.id, c.name, c.tier, c.language, c.timezone, c.merged_into"
        " FROM customer_identities ci JOIN unnest($1::text[], $2::text[]) AS wanted(kind, value) USING (kind, value)"
        " JOIN customers c ON c.id = ci.customer_id ORDER BY c.id FOR UPDATE OF c",
        [i.kind for i in identities], [i.value for i in identities])
    return {Identity(row["kind"], row["value"]): row for row in rows}


def _customer(row: asyncpg.Record, name: str | None) -> Customer:
    return Customer(id=row["id"], name=row["name"] or name, tier=row["tier"], language=row["language"],
                    timezone=row["timezone"], sender_identity_id=row["identity_id"])


async def _resolve_slow(conn: asyncpg.Connection, unique: list[Identity], name: str | None,
                        now: datetime) -> Customer:
    """New identities (or a merge): lock the identity keys so two first messages from one new sender
    cannot create two customers, then create, link or merge."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k",
        sorted(identity.key for identity in unique),
    )
    known = await _lock_known(conn, unique)
    owners = sorted({row["id"] for row in known.values()})
    if not owners:
        return await _create(conn, unique, name, now)
    customer_id = owners[0]
    if len(owners) > 1:
        row = known[unique[0]]
        return Customer(id=customer_id, name=row["name"], tier=row["tier"], language=row["language"],
                        timezone=row["timezone"], merge_with=tuple(owners[1:]))
    missing = [i for i in unique if i not in known]
    identity_ids = {identity: row["identity_id"] for identity, row in known.items()}
    if missing:
        inserted = await conn.fetch(
            "INSERT INTO customer_identities (customer_id, kind, value, created_at)"
            " SELECT $1, kind, value, $4 FROM unnest($2::text[], $3::text[]) AS x(kind, value)"
            " RETURNING id, kind, value",
            customer_id, [i.kind for i in missing], [i.value for i in missing], now,
        )
        identity_ids.update({Identity(row["kind"], row["value"]): row["id"] for row in inserted})
    row = await conn.fetchrow(
        "UPDATE customers SET name = COALESCE(name, $2) WHERE id = $1"
        " RETURNING id, name, tier, language, timezone",
        customer_id, name,
    )
    return Customer(**dict(row), sender_identity_id=identity_ids[unique[0]])


async def _create(conn: asyncpg.Connection, identities: list[Identity], name: str | None,
                  now: datetime) -> Customer:
    """A first-time sender: the customer and their identities in one statement."""
    rows = await conn.fetch(
        "WITH c AS (INSERT INTO customers (name, created_at) VALUES ($1, $2) RETURNING id, tier)"
        " INSERT INTO customer_identities (customer_id, kind, value, created_at)"
        " SELECT c.id, x.kind, x.value, $2 FROM c, unnest($3::text[], $4::text[]) AS x(kind, value)"
        " RETURNING customer_id, id, kind, value",
        name, now, [i.kind for i in identities], [i.value for i in identities])
    sender = next(row for row in rows if Identity(row["kind"], row["value"]) == identities[0])
    return Customer(id=sender["customer_id"], name=name, tier="standard", language=None, timezone=None,
                    sender_identity_id=sender["id"], is_new=True)


async def fold(conn: asyncpg.Connection, survivor_id: int, other_id: int) -> str:
    """Fold customer `other_id` into `survivor_id`: identities move over, the survivor takes what it
    lacks (name, language, timezone, a tier above standard), `other_id` points at it. Returns the
    survivor's tier. Both rows are locked in id order; a concurrent merge that won is a Conflict."""
    if survivor_id == other_id:
        raise InvalidInput("a customer cannot be merged with itself")
    rows = await conn.fetch("SELECT id, merged_into FROM customers WHERE id = ANY($1::bigint[]) ORDER BY id"
                            " FOR UPDATE", [survivor_id, other_id])
    found = {row["id"]: row for row in rows}
    for wanted in (survivor_id, other_id):
        if wanted not in found:
            raise NotFound(f"no customer {wanted}")
        if found[wanted]["merged_into"] is not None:  # checked under the lock: a concurrent merge won
            raise Conflict(f"customer {wanted} was already merged into {found[wanted]['merged_into']}")
    await conn.execute("UPDATE customer_identities SET customer_id = $1 WHERE customer_id = $2",
                       survivor_id, other_id)
    tier: str = await conn.fetchval(
        "WITH s AS (UPDATE customers s SET tier = CASE WHEN s.tier = 'standard' THEN o.tier ELSE s.tier END,"
        " name = COALESCE(s.name, o.name), language = COALESCE(s.language, o.language),"
        " timezone = COALESCE(s.timezone, o.timezone) FROM customers o WHERE s.id = $1 AND o.id = $2"
        " RETURNING s.tier)"
        " UPDATE customers SET merged_into = $1 WHERE id = $2 RETURNING (SELECT tier FROM s)",
        survivor_id, other_id)
    return tier


async def tier_of(conn: asyncpg.Connection, customer_id: int) -> str:
    tier: str = await conn.fetchval("SELECT tier FROM customers WHERE id = $1", customer_id)
    return tier


async def profile(conn: asyncpg.Connection, customer_id: int) -> dict[str, Any] | None:
    """The customer as agents see it: identities and ticket history (follows merges)."""
    row = await conn.fetchrow(
        "SELECT id, name, tier, language, timezone, merged_into, created_at FROM customers WHERE id = $1",
        customer_id)
    if row is None:
        return None
    if row["merged_into"] is not None:
        return await profile(conn, row["merged_into"])
    identities = await conn.fetch(
        "SELECT kind, value FROM customer_identities WHERE customer_id = $1 ORDER BY id", customer_id)
    history = await conn.fetch(
        "SELECT number, status, priority, channel, subject, created_at FROM tickets"
        " WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50", customer_id)
    return {
        "id": row["id"],
        "name": row["name"],
        "tier": row["tier"],
        "language": row["language"],
        "timezone": row["timezone"],
        "created_at": row["created_at"].isoformat(),
        "identities": [dict(i) for i in identities],
        "tickets": [{"ref": ref(t["number"]), "status": t["status"], "priority": t["priority"],
                     "channel": t["channel"], "subject": t["subject"],
                     "created_at": t["created_at"].isoformat()} for t in history],
    }


async def address_on(conn: asyncpg.Connection, customer_id: int, kind: str) -> str | None:
    """The customer's newest identity of `kind` (an email address, a platform user id)."""
    value: str | None = await conn.fetchval(
        "SELECT value FROM customer_identities WHERE customer_id = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
        customer_id, kind)
    return value
