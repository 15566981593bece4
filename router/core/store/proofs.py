"""One-time proofs of an address (`identity_proofs`, written only here). Only an HMAC of each code is
stored; counting requests and guesses happens here, in the database, so every process agrees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from router.core.inbound import Identity


@dataclass(frozen=True)
class Proof:
    id: int
    code_hash: bytes
    expires_at: datetime
    attempts: int
    customer_id: int
    identity: Identity
    used: bool


_COLUMNS = "id, code_hash, expires_at, attempts, customer_id, kind, value, used_at IS NOT NULL AS used"


def _proof(row: asyncpg.Record) -> Proof:
    return Proof(row["id"], bytes(row["code_hash"]), row["expires_at"], row["attempts"], row["customer_id"],
                 Identity(row["kind"], row["value"]), row["used"])


async def recent_requests(conn: asyncpg.Connection, customer_id: int, identity: Identity,
                          since: Sequence[datetime]) -> tuple[int, ...]:
    """How many codes this customer asked for since `since[0]`, then how many anyone asked for this
    address since each of `since[1:]`."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM identity_proofs WHERE customer_id = $1"
        "  AND created_at > ($4::timestamptz[])[1]) AS by_customer,"
        " ARRAY(SELECT (SELECT count(*) FROM identity_proofs WHERE kind = $2 AND value = $3 AND created_at > s)"
        "  FROM unnest(($4::timestamptz[])[2:]) WITH ORDINALITY AS x(s, n) ORDER BY n) AS by_address",
        customer_id, identity.kind, identity.value, list(since))
    return (int(row["by_customer"]), *(int(n) for n in row["by_address"]))


async def create(conn: asyncpg.Connection, customer_id: int, identity: Identity, channel: str, code_hash: bytes,
                 now: datetime, ttl: timedelta) -> int:
    """A new code replaces the customer's earlier unused ones for this address."""
    await conn.execute("UPDATE identity_proofs SET used_at = $4 WHERE customer_id = $1 AND kind = $2 AND value = $3"
                       " AND used_at IS NULL", customer_id, identity.kind, identity.value, now)
    proof_id: int = await conn.fetchval(
        "INSERT INTO identity_proofs (customer_id, kind, value, channel, code_hash, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        customer_id, identity.kind, identity.value, channel, code_hash, now, now + ttl)
    return proof_id


async def latest_for_update(conn: asyncpg.Connection, customer_id: int, identity: Identity) -> Proof | None:
    """The customer's newest unused code for this address, locked (guesses are counted one at a time)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM identity_proofs WHERE customer_id = $1 AND kind = $2"
        " AND value = $3 AND used_at IS NULL ORDER BY id DESC LIMIT 1 FOR UPDATE",
        customer_id, identity.kind, identity.value)
    return _proof(row) if row else None


async def by_id(conn: asyncpg.Connection, proof_id: int, *, lock: bool = False) -> Proof | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM identity_proofs WHERE id = $1{' FOR UPDATE' if lock else ''}",
                              proof_id)
    return _proof(row) if row else None


async def count_attempt(conn: asyncpg.Connection, proof_id: int) -> None:
    await conn.execute("UPDATE identity_proofs SET attempts = attempts + 1 WHERE id = $1", proof_id)


async def spend(conn: asyncpg.Connection, proof_id: int, now: datetime) -> None:
    await conn.execute("UPDATE identity_proofs SET used_at = $2, attempts = attempts + 1 WHERE id = $1",
                       proof_id, now)
