"""Customers and their identities (the only writer of `customers` and `customer_identities`):
resolve a sender to one customer, link proved identities, fold one customer record into another.

What a merge does to tickets, clocks and agents is `core.merge`'s business, not this module's.

Concurrency: identity keys are locked with transaction-scoped advisory locks (in sorted order, so
two transactions never wait on each other in a cycle) before they are looked up, so two messages
from the same new sender cannot create two customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from router.core.errors import Conflict, InvalidInput, NotFound
from router.core.inbound import Identity
from router.core.refs import ref


@dataclass(frozen=True)
class Suggestion:
    """A typed identity that belongs to another customer: maybe the same person, for an agent to judge."""

    customer_id: int
    identity: Identity
    reason: str
    confidence: float


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
    suggestions: tuple[Suggestion, ...] = ()
    verified: bool = True  # False: known only by what they typed (an anonymous web form sender)


async def resolve(conn: asyncpg.Connection, identities: Sequence[Identity], claims: Sequence[Identity],
                  name: str | None, now: datetime) -> Customer:
    """The customer behind a message, their row locked so their messages thread one at a time.

    `identities` are proved (the sender's platform id, a mail's From): they find or create the
    customer, and identities proved together link — when they belong to different customers the
    result names the others in `merge_with` (the oldest survives) and the caller merges them.
    `claims` are only typed (SPEC §2.4): they never find another customer's record. A claim that is
    another customer's identity becomes a `Suggestion`; otherwise it is kept as an unverified
    identity of this customer, so replies can reach the address. A sender with claims only is a
    customer of their own, or the one earlier anonymous claimant of the same address (whose only
    way to hear back is that address, so joining them reveals nothing).
    """
    if not identities:
        return await _resolve_claimant(conn, claims, name, now)
    unique = list(dict.fromkeys(identities))
    known = await _lock_known(conn, unique)
    customer = None
    if len(known) == len(unique) and len({row["id"] for row in known.values()}) == 1:
        row = known[unique[0]]
        if row["merged_into"] is None:
            if name and row["name"] is None:
                await conn.execute("UPDATE customers SET name = $2 WHERE id = $1", row["id"], name)
            customer = _customer(row, name)
    if customer is None:
        customer = await _resolve_slow(conn, unique, name, now)
    if claims and not customer.merge_with:
        customer = await _keep_claims(conn, customer, claims, now)
    return customer


_KNOWN_SQL = (
    "SELECT ci.id AS identity_id, ci.kind, ci.value, c.id, c.name, c.tier, c.language, c.timezone, c.merged_into"
    " FROM customer_identities ci JOIN unnest($1::text[], $2::text[]) AS wanted(kind, value) USING (kind, value)"
    " JOIN customers c ON c.id = ci.customer_id WHERE ci.verified ORDER BY c.id FOR UPDATE OF c, ci"
)


async def _lock_known(conn: asyncpg.Connection, identities: Sequence[Identity]) -> dict[Identity, asyncpg.Record]:
    """The common case in one round trip: every identity is known (verified), its customer row locked.

    The identity rows are locked too: a merge or split moving one of them makes PostgreSQL re-check
    the join against the moved row when its lock is released, so a stale match drops out (the caller
    then takes the slow path) instead of threading the message onto the customer it just left."""
    rows = await conn.fetch(_KNOWN_SQL, [i.kind for i in identities], [i.value for i in identities])
    return {Identity(row["kind"], row["value"]): row for row in rows}


def _customer(row: asyncpg.Record, name: str | None) -> Customer:
    return Customer(id=row["id"], name=row["name"] or name, tier=row["tier"], language=row["language"],
                    timezone=row["timezone"], sender_identity_id=row["identity_id"])


async def _lock_keys(conn: asyncpg.Connection, keys: Sequence[str]) -> None:
    """Transaction-scoped advisory locks on identity keys, in sorted order (never a lock cycle), so
    two first messages from one new sender cannot create two customers."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k",
                       sorted(set(keys)))


async def _resolve_slow(conn: asyncpg.Connection, unique: list[Identity], name: str | None,
                        now: datetime) -> Customer:
    """New identities (or a merge): lock the identity keys, then create, link or ask for a merge."""
    await _lock_keys(conn, [identity.key for identity in unique])
    known = await _lock_known(conn, unique)
    owners = sorted({row["id"] for row in known.values()})
    if not owners:
        return await _create(conn, unique, (), name, now)
    customer_id = owners[0]
    if len(owners) > 1:
        row = known[unique[0]]
        return Customer(id=customer_id, name=row["name"], tier=row["tier"], language=row["language"],
                        timezone=row["timezone"], merge_with=tuple(owners[1:]))
    missing = [i for i in unique if i not in known]
    identity_ids = {identity: row["identity_id"] for identity, row in known.items()}
    if missing:
        # A claim this customer made earlier is proved now: it becomes verified rather than a second row.
        inserted = await conn.fetch(
            "INSERT INTO customer_identities (customer_id, kind, value, created_at)"
            " SELECT $1, kind, value, $4 FROM unnest($2::text[], $3::text[]) AS x(kind, value)"
            " ON CONFLICT (customer_id, kind, value) DO UPDATE SET verified = true"
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


async def _create(conn: asyncpg.Connection, identities: Sequence[Identity], claims: Sequence[Identity],
                  name: str | None, now: datetime) -> Customer:
    """A first-time sender: the customer, their identities and claims in one statement."""
    every = [*identities, *claims]
    rows = await conn.fetch(
        "WITH c AS (INSERT INTO customers (name, created_at) VALUES ($1, $2) RETURNING id, tier)"
        " INSERT INTO customer_identities (customer_id, kind, value, verified, created_at)"
        " SELECT c.id, x.kind, x.value, x.verified, $2"
        " FROM c, unnest($3::text[], $4::text[], $5::boolean[]) AS x(kind, value, verified)"
        " RETURNING customer_id, id, kind, value",
        name, now, [i.kind for i in every], [i.value for i in every],
        [True] * len(identities) + [False] * len(claims))
    sender = next(row for row in rows if Identity(row["kind"], row["value"]) == every[0])
    return Customer(id=sender["customer_id"], name=name, tier="standard", language=None, timezone=None,
                    sender_identity_id=sender["id"], is_new=True, verified=bool(identities))


async def _holders(conn: asyncpg.Connection, claims: Sequence[Identity]) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT ci.id AS identity_id, ci.customer_id, ci.kind, ci.value, ci.verified FROM customer_identities ci"
        " JOIN unnest($1::text[], $2::text[]) AS wanted(kind, value) USING (kind, value)"
        " JOIN customers c ON c.id = ci.customer_id WHERE c.merged_into IS NULL ORDER BY ci.customer_id",
        [i.kind for i in claims], [i.value for i in claims]))


def _suggestions(rows: Sequence[asyncpg.Record], customer_id: int | None) -> tuple[Suggestion, ...]:
    return tuple(Suggestion(row["customer_id"], Identity(row["kind"], row["value"]),
                            f"typed {row['kind']} {row['value']}, which customer {row['customer_id']} uses", 0.6)
                 for row in rows if row["verified"] and row["customer_id"] != customer_id)


async def _keep_claims(conn: asyncpg.Connection, customer: Customer, claims: Sequence[Identity],
                       now: datetime) -> Customer:
    """A known sender typed `claims`: suggestions for those another customer uses, unverified
    identities of this customer for the rest."""
    await _lock_keys(conn, [f"claim:{claim.key}" for claim in claims])
    rows = await _holders(conn, claims)
    taken = {Identity(row["kind"], row["value"]) for row in rows
             if row["customer_id"] == customer.id or row["verified"]}
    fresh = [claim for claim in dict.fromkeys(claims) if claim not in taken]
    if fresh:
        await conn.execute(
            "INSERT INTO customer_identities (customer_id, kind, value, verified, created_at)"
            " SELECT $1, kind, value, false, $4 FROM unnest($2::text[], $3::text[]) AS x(kind, value)"
            " ON CONFLICT DO NOTHING", customer.id, [c.kind for c in fresh], [c.value for c in fresh], now)
    found = _suggestions(rows, customer.id)
    return replace(customer, suggestions=found) if found else customer


async def _resolve_claimant(conn: asyncpg.Connection, claims: Sequence[Identity], name: str | None,
                            now: datetime) -> Customer:
    """A sender known only by what they typed (the web form's address)."""
    if not claims:
        raise InvalidInput("the sender has no identity (email, phone or platform id)")
    await _lock_keys(conn, [f"claim:{claim.key}" for claim in claims])
    rows = await _holders(conn, claims)
    verified_owner = any(row["verified"] for row in rows)
    earlier = [row for row in rows if not row["verified"] and Identity(row["kind"], row["value"]) == claims[0]]
    same = None if verified_owner else await _claiming_exactly(conn, [r["customer_id"] for r in earlier], claims)
    if same is not None:
        row = await conn.fetchrow(
            "UPDATE customers SET name = COALESCE(name, $2) WHERE id = $1 RETURNING id, name, tier, language, timezone",
            same, name)
        sender = next(r for r in earlier if r["customer_id"] == same)
        return Customer(**dict(row), sender_identity_id=sender["identity_id"], verified=False)
    created = await _create(conn, (), claims, name, now)
    return replace(created, suggestions=_suggestions(rows, None))


async def _claiming_exactly(conn: asyncpg.Connection, candidates: Sequence[int],
                            claims: Sequence[Identity]) -> int | None:
    """The earliest of `candidates` whose identities are exactly `claims`, or None. Joining an earlier
    claimant who also typed something else would send this sender's replies to that other address
    (someone who typed the victim's phone and their own mailbox would read the victim's answers)."""
    if not candidates:
        return None
    rows = await conn.fetch("SELECT customer_id, kind, value FROM customer_identities"
                            " WHERE customer_id = ANY($1::bigint[]) ORDER BY customer_id", list(candidates))
    held: dict[int, set[Identity]] = {}
    for row in rows:
        held.setdefault(row["customer_id"], set()).add(Identity(row["kind"], row["value"]))
    wanted = set(claims)
    return next((customer_id for customer_id, identities in held.items() if identities == wanted), None)


async def prove_claim(conn: asyncpg.Connection, claimant_id: int, identity: Identity) -> bool:
    """The address `identity` answered a message we sent to `claimant_id`'s claim of it: is that
    claimant known only by claims (so that merging them into the address's owner gives them nothing)?"""
    row = await conn.fetchrow(
        "SELECT bool_or(verified) AS any_verified, bool_or(kind = $2 AND value = $3) AS claimed"
        " FROM customer_identities WHERE customer_id = $1", claimant_id, identity.kind, identity.value)
    return bool(row and row["claimed"] and not row["any_verified"])


async def merge_drops(conn: asyncpg.Connection, survivor_id: int, other_id: int) -> list[tuple[int, int | None]]:
    """The identities a merge of `other_id` into `survivor_id` drops, as (dropped identity, the
    survivor's identity that stands for it, or None).

    Of an identity both hold, the claim goes (the survivor's own row when neither proved it). When
    `other_id` holds only claims (a web-form sender, a claimant an agent merges from a suggestion),
    every claim of theirs goes: a typed address proves nothing, so it must never become a place the
    survivor's replies are sent (someone typing the owner's phone and their own mailbox would read
    the owner's answers). The merge log keeps each dropped row whole, so a split restores it."""
    rows = await conn.fetch(
        "SELECT CASE WHEN b.verified THEN a.id ELSE b.id END AS drop_id,"
        " CASE WHEN b.verified THEN b.id ELSE a.id END AS keep_id"
        " FROM customer_identities a JOIN customer_identities b ON a.kind = b.kind AND a.value = b.value"
        " WHERE a.customer_id = $1 AND b.customer_id = $2"
        " UNION ALL SELECT o.id, NULL FROM customer_identities o WHERE o.customer_id = $2 AND NOT o.verified"
        " AND NOT EXISTS (SELECT 1 FROM customer_identities v WHERE v.customer_id = $2 AND v.verified)"
        " AND NOT EXISTS (SELECT 1 FROM customer_identities s WHERE s.customer_id = $1 AND s.kind = o.kind"
        "  AND s.value = o.value)", survivor_id, other_id)
    return [(row["drop_id"], row["keep_id"]) for row in rows]


async def lock_pair(conn: asyncpg.Connection, survivor_id: int, other_id: int) -> dict[str, Any]:
    """Lock both customers (in id order) for a merge and return the survivor's profile fields as they
    are. A missing customer is NotFound; one merged already (a concurrent merge won) is a Conflict."""
    if survivor_id == other_id:
        raise InvalidInput("a customer cannot be merged with itself")
    rows = await conn.fetch("SELECT id, name, tier, language, timezone, merged_into FROM customers"
                            " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", [survivor_id, other_id])
    found = {row["id"]: row for row in rows}
    for wanted in (survivor_id, other_id):
        if wanted not in found:
            raise NotFound(f"no customer {wanted}")
        if found[wanted]["merged_into"] is not None:  # checked under the lock: a concurrent merge won
            raise Conflict(f"customer {wanted} was already merged into {found[wanted]['merged_into']}")
    survivor = found[survivor_id]
    return {"name": survivor["name"], "tier": survivor["tier"], "language": survivor["language"],
            "timezone": survivor["timezone"]}


async def fold(conn: asyncpg.Connection, survivor_id: int, other_id: int, dropped: Sequence[int]) -> str:
    """Fold customer `other_id` into `survivor_id` (both locked by `lock_pair`): identities move over,
    the survivor takes what it lacks (name, language, timezone, a tier above standard), `other_id`
    points at it. Returns the survivor's tier."""
    # Identities move over, except those `merge_drops` said go.
    await conn.execute("DELETE FROM customer_identities WHERE id = ANY($1::bigint[])", list(dropped))
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


async def unfold(conn: asyncpg.Connection, survivor_id: int, merged_id: int, moved: Sequence[asyncpg.Record],
                 survivor_before: dict[str, Any]) -> None:
    """Undo `fold` (both customers locked by the caller): every identity it moved returns to its
    customer, then the claims it dropped come back under their own ids, the survivor gives back each
    profile field it took over (unless someone changed it since), and the merged customer stands alone."""
    await conn.execute("UPDATE customer_identities SET customer_id = $1 WHERE id = ANY($2::bigint[])"
                       " AND customer_id = $3", merged_id,
                       [r["identity_id"] for r in moved if not r["dropped"] and r["customer_id"] == merged_id],
                       survivor_id)
    dropped = [row for row in moved if row["dropped"]]
    if dropped:
        await conn.execute(
            "INSERT INTO customer_identities (id, customer_id, kind, value, verified, created_at)"
            " OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],"
            " $5::boolean[], $6::timestamptz[])",
            [r["identity_id"] for r in dropped], [r["customer_id"] for r in dropped], [r["kind"] for r in dropped],
            [r["value"] for r in dropped], [r["verified"] for r in dropped], [r["created_at"] for r in dropped])
    await conn.execute(
        "WITH o AS (UPDATE customers SET merged_into = NULL WHERE id = $2 RETURNING name, tier, language, timezone)"
        " UPDATE customers s SET"
        " name = CASE WHEN $3::text IS NULL AND s.name IS NOT DISTINCT FROM o.name THEN NULL ELSE s.name END,"
        " tier = CASE WHEN $4::text = 'standard' AND s.tier = o.tier THEN 'standard' ELSE s.tier END,"
        " language = CASE WHEN $5::text IS NULL AND s.language IS NOT DISTINCT FROM o.language THEN NULL"
        "  ELSE s.language END,"
        " timezone = CASE WHEN $6::text IS NULL AND s.timezone IS NOT DISTINCT FROM o.timezone THEN NULL"
        "  ELSE s.timezone END"
        " FROM o WHERE s.id = $1",
        survivor_id, merged_id, survivor_before["name"], survivor_before["tier"], survivor_before["language"],
        survivor_before["timezone"])


async def lock_live(conn: asyncpg.Connection, customer_ids: Sequence[int]) -> dict[int, int | None]:
    """Lock customers in id order; returns each one's `merged_into`."""
    rows = await conn.fetch("SELECT id, merged_into FROM customers WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                            list(customer_ids))
    return {row["id"]: row["merged_into"] for row in rows}


async def live_id(conn: asyncpg.Connection, customer_id: int) -> int:
    """The customer a (possibly merged) record now lives on, or NotFound."""
    row = await conn.fetchrow(
        "WITH RECURSIVE chain(id, merged_into, depth) AS (SELECT id, merged_into, 0 FROM customers WHERE id = $1"
        " UNION ALL SELECT c.id, c.merged_into, chain.depth + 1 FROM customers c JOIN chain ON c.id = chain.merged_into"
        " WHERE chain.depth < 100) SELECT id FROM chain WHERE merged_into IS NULL", customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    found: int = row["id"]
    return found


@dataclass(frozen=True)
class Holding:
    """Who holds an identity: the verified owner (if any), and whether `customer_id` holds it."""

    owner_id: int | None
    held: bool
    held_verified: bool


async def holding(conn: asyncpg.Connection, customer_id: int, identity: Identity) -> Holding:
    """Lock the identity's key, then read who holds it (verified) and whether `customer_id` does."""
    await _lock_keys(conn, [identity.key, f"claim:{identity.key}"])
    rows = await conn.fetch(
        "SELECT ci.customer_id, ci.verified FROM customer_identities ci JOIN customers c ON c.id = ci.customer_id"
        " WHERE ci.kind = $1 AND ci.value = $2 AND c.merged_into IS NULL", identity.kind, identity.value)
    owner = next((row["customer_id"] for row in rows if row["verified"]), None)
    mine = [row for row in rows if row["customer_id"] == customer_id]
    return Holding(owner, bool(mine), bool(mine and mine[0]["verified"]))


async def mark_verified(conn: asyncpg.Connection, customer_id: int, identity: Identity, now: datetime) -> int:
    """`identity` is proved to be `customer_id`'s (nobody else holds it verified: the caller checked
    under `holding`'s lock): their claim becomes verified, or the identity is added verified.
    Returns its id."""
    identity_id: int = await conn.fetchval(
        "INSERT INTO customer_identities (customer_id, kind, value, verified, created_at) VALUES ($1, $2, $3, true, $4)"
        " ON CONFLICT (customer_id, kind, value) DO UPDATE SET verified = true RETURNING id",
        customer_id, identity.kind, identity.value, now)
    return identity_id


async def has_verified(conn: asyncpg.Connection, customer_id: int) -> bool:
    """Does the customer hold any proved identity (a mailbox, a platform id), or only claims?"""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM customer_identities WHERE customer_id = $1 AND verified)", customer_id)
    return found


async def latest_ticket_id(conn: asyncpg.Connection, customer_id: int) -> int | None:
    """The customer's active ticket, else their latest: where the timeline shows a change to them."""
    ticket_id: int | None = await conn.fetchval(
        "SELECT id FROM tickets WHERE customer_id = $1 ORDER BY status IN ('open', 'pending') DESC, created_at DESC"
        " LIMIT 1", customer_id)
    return ticket_id


async def language_of(conn: asyncpg.Connection, customer_id: int) -> str | None:
    """The customer's language, else the language of their latest ticket."""
    language: str | None = await conn.fetchval(
        "SELECT COALESCE(c.language, (SELECT t.language FROM tickets t WHERE t.customer_id = c.id"
        " ORDER BY t.created_at DESC LIMIT 1)) FROM customers c WHERE c.id = $1", customer_id)
    return language


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
        "SELECT kind, value, verified FROM customer_identities WHERE customer_id = $1 ORDER BY id", customer_id)
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
    """Where to reach the customer on `kind`: their newest verified identity of that kind, else the
    newest address they typed themselves (the web-form sender hears back at the address they gave).
    Never an unverified identity another customer brought in by a merge still in force: a claim
    proves nothing, and a merge must not turn what someone else typed into where replies go."""
    return (await addresses_on(conn, customer_id, [kind])).get(kind)


async def addresses_on(conn: asyncpg.Connection, customer_id: int, kinds: Sequence[str]) -> dict[str, str]:
    """`address_on` for several channels in one round trip (the ticket page offers every channel)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (ci.kind) ci.kind, ci.value FROM customer_identities ci"
        " WHERE ci.customer_id = $1 AND ci.kind = ANY($2::text[])"
        " AND (ci.verified OR NOT EXISTS (SELECT 1 FROM customer_merge_identities b"
        "  JOIN customer_merges m ON m.id = b.merge_id WHERE b.identity_id = ci.id AND NOT b.dropped"
        "  AND m.undone_at IS NULL))"
        " ORDER BY ci.kind, ci.verified DESC, ci.id DESC", customer_id, list(kinds))
    return {row["kind"]: row["value"] for row in rows}
