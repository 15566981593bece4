"""Suggested matches (`identity_suggestions`, written only here): a claimant typed an identity another
customer holds verified. Agents merge or dismiss them; nothing links on its own (SPEC §2.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from router.core.errors import Conflict, NotFound
from router.core.inbound import Identity
from router.core.store.customers import Suggestion

SuggestionStatus = Literal["open", "dismissed", "merged"]


@dataclass(frozen=True)
class StoredSuggestion:
    id: int
    claimant_id: int
    other_id: int
    identity: Identity
    reason: str
    confidence: float
    status: SuggestionStatus


async def record(conn: asyncpg.Connection, claimant_id: int, found: Sequence[Suggestion], ticket_id: int | None,
                 now: datetime) -> None:
    """Keep what `customers.resolve` found, once per pair and identity: a suggestion an agent
    dismissed stays dismissed however often the claimant types the address again."""
    await conn.execute(
        "INSERT INTO identity_suggestions (claimant_id, other_id, kind, value, reason, confidence, ticket_id,"
        " created_at) SELECT $1, x.other, x.kind, x.value, x.reason, x.confidence, $7, $8"
        " FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::real[])"
        " AS x(other, kind, value, reason, confidence) ON CONFLICT DO NOTHING",
        claimant_id, [s.customer_id for s in found], [s.identity.kind for s in found],
        [s.identity.value for s in found], [s.reason for s in found], [s.confidence for s in found],
        ticket_id, now)


def _stored(row: asyncpg.Record) -> StoredSuggestion:
    return StoredSuggestion(row["id"], row["claimant_id"], row["other_id"], Identity(row["kind"], row["value"]),
                            row["reason"], row["confidence"], row["status"])


async def open_for_update(conn: asyncpg.Connection, suggestion_id: int) -> StoredSuggestion:
    """The suggestion, locked; NotFound, or Conflict when it was decided already."""
    row = await conn.fetchrow(
        "SELECT id, claimant_id, other_id, kind, value, reason, confidence, status FROM identity_suggestions"
        " WHERE id = $1 FOR UPDATE", suggestion_id)
    if row is None:
        raise NotFound(f"no suggestion {suggestion_id}")
    if row["status"] != "open":
        raise Conflict(f"suggestion {suggestion_id} was {row['status']} already")
    return _stored(row)


async def decide(conn: asyncpg.Connection, suggestion_id: int, status: SuggestionStatus, agent_id: int | None,
                 note: str | None, now: datetime) -> None:
    await conn.execute(
        "UPDATE identity_suggestions SET status = $2, decided_by = $3, decided_at = $4, decision_note = $5"
        " WHERE id = $1", suggestion_id, status, agent_id, now, note)


async def close_between(conn: asyncpg.Connection, a: int, b: int, status: SuggestionStatus, agent_id: int | None,
                        note: str, now: datetime) -> None:
    """Every open suggestion between two customers is settled by one decision about them (a merge)."""
    await conn.execute(
        "UPDATE identity_suggestions SET status = $3, decided_by = $4, decided_at = $5, decision_note = $6"
        " WHERE status = 'open' AND ((claimant_id = $1 AND other_id = $2) OR (claimant_id = $2 AND other_id = $1))",
        a, b, status, agent_id, now, note)


async def reject_merged(conn: asyncpg.Connection, a: int, b: int, agent_id: int | None, note: str,
                        now: datetime) -> None:
    """A merge of the two was undone: the suggestions it settled count as dismissed (not the same person)."""
    await conn.execute(
        "UPDATE identity_suggestions SET status = 'dismissed', decided_by = $3, decided_at = $4, decision_note = $5"
        " WHERE status = 'merged' AND ((claimant_id = $1 AND other_id = $2) OR (claimant_id = $2 AND other_id = $1))",
        a, b, agent_id, now, note)


async def for_customer(conn: asyncpg.Connection, customer_id: int, *, only_open: bool = False,
                       limit: int = 50) -> list[dict[str, Any]]:
    """Suggestions about this customer (either side), newest first, as agents see them."""
    rows = await conn.fetch(
        "SELECT s.id, s.claimant_id, s.other_id, s.kind, s.value, s.reason, s.confidence, s.status, s.created_at,"
        " s.decided_at, s.decision_note, a.email AS decided_by, t.number AS ticket_number,"
        " c.name AS claimant_name, o.name AS other_name"
        " FROM identity_suggestions s LEFT JOIN agents a ON a.id = s.decided_by"
        " LEFT JOIN tickets t ON t.id = s.ticket_id JOIN customers c ON c.id = s.claimant_id"
        " JOIN customers o ON o.id = s.other_id"
        " WHERE (s.claimant_id = $1 OR s.other_id = $1) AND (NOT $2 OR s.status = 'open')"
        " ORDER BY s.id DESC LIMIT $3", customer_id, only_open, limit)
    return [{
        "id": r["id"], "claimant": {"id": r["claimant_id"], "name": r["claimant_name"]},
        "other": {"id": r["other_id"], "name": r["other_name"]}, "identity": {"kind": r["kind"], "value": r["value"]},
        "reason": r["reason"], "confidence": round(float(r["confidence"]), 2), "status": r["status"],
        "ticket_number": r["ticket_number"], "created_at": r["created_at"].isoformat(),
        "decided": None if r["decided_at"] is None else {
            "at": r["decided_at"].isoformat(), "by": r["decided_by"], "note": r["decision_note"]},
    } for r in rows]
