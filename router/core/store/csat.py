"""Surveys and their answers (`csat_responses`) and the scheduler's decisions (`csat_decisions`): the
only writer of both tables, and the reads the survey page and the ticket page need.

What a decision or an answer *means* (who is surveyed, what a low score sets off) is
`router.core.csat`'s job; this module only stores and reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from router.core.store.tickets import COLUMNS, Ticket

SurveyKind = Literal["csat", "nps"]
Outcome = Literal["csat", "nps", "automated", "merged", "no_reply", "quiet", "unreachable"]


async def due_tickets(conn: asyncpg.Connection, solved_before: datetime, solved_after: datetime,
                      limit: int) -> list[int]:
    """Tickets solved between `solved_after` and `solved_before` (still solved or since closed) that
    have no decision yet, oldest resolution first."""
    rows = await conn.fetch(
        "SELECT t.id FROM tickets t WHERE t.solved_at IS NOT NULL AND t.solved_at <= $1 AND t.solved_at > $2"
        " AND t.status IN ('solved', 'closed')"
        " AND NOT EXISTS (SELECT 1 FROM csat_decisions d WHERE d.ticket_id = t.id)"
        " ORDER BY t.solved_at LIMIT $3", solved_before, solved_after, limit)
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class Candidate:
    """A solved ticket the scheduler holds (locked) while it decides, and the facts it decides on."""

    ticket: Ticket
    customer_wrote: bool  # at least one inbound message that is not automated (auto-reply, bounce)
    merged_away: bool  # folded into another ticket by a customer merge that was not undone
    customer_language: str | None


async def claim(conn: asyncpg.Connection, ticket_id: int, solved_before: datetime) -> Candidate | None:
    """Lock the ticket if it is still due and undecided. None when it is not (reopened meanwhile, decided
    by another process) or when someone else holds it now (SKIP LOCKED: the next scan comes back)."""
    qualified = ", ".join(f"t.{name}" for name in COLUMNS.split(", "))
    row = await conn.fetchrow(
        f"SELECT {qualified}, c.language AS customer_language,"
        " EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in'"
        "  AND m.auto_kind IS NULL) AS customer_wrote,"
        " EXISTS (SELECT 1 FROM customer_merge_tickets b JOIN customer_merges m ON m.id = b.merge_id"
        "  WHERE b.ticket_id = t.id AND b.folded AND m.undone_at IS NULL) AS merged_away"
        " FROM tickets t JOIN customers c ON c.id = t.customer_id"
        " WHERE t.id = $1 AND t.solved_at IS NOT NULL AND t.solved_at <= $2 AND t.status IN ('solved', 'closed')"
        " AND NOT EXISTS (SELECT 1 FROM csat_decisions d WHERE d.ticket_id = t.id)"
        " FOR UPDATE OF t SKIP LOCKED", ticket_id, solved_before)
    if row is None:
        return None
    return Candidate(Ticket.from_row(row), row["customer_wrote"], row["merged_away"], row["customer_language"])


async def lock_customer(conn: asyncpg.Connection, customer_id: int) -> None:
    """Serialise the decisions about one customer until this transaction ends, so two of their tickets
    decided at once by two processes see each other's survey (the quiet period holds). A transaction
    lock: nothing outlives the transaction (PgBouncer's transaction mode is fine)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('csat-customer:' || $1::bigint, 0))",
                       customer_id)


async def last_sent(conn: asyncpg.Connection, customer_id: int, kinds: tuple[SurveyKind, ...]) -> datetime | None:
    """When the customer was last sent a survey of one of `kinds`, about any of their tickets (tickets
    follow a customer through merges; the survey rows keep the id they were sent to)."""
    found: datetime | None = await conn.fetchval(
        "SELECT max(r.sent_at) FROM tickets t JOIN csat_responses r ON r.ticket_id = t.id"
        " WHERE t.customer_id = $1 AND r.kind = ANY($2::text[])", customer_id, list(kinds))
    return found


async def decide(conn: asyncpg.Connection, ticket_id: int, outcome: Outcome, now: datetime) -> None:
    await conn.execute("INSERT INTO csat_decisions (ticket_id, outcome, decided_at) VALUES ($1, $2, $3)",
                       ticket_id, outcome, now)


async def create_survey(conn: asyncpg.Connection, *, kind: SurveyKind, ticket_id: int, customer_id: int,
                        agent_id: int | None, now: datetime) -> int:
    response_id: int = await conn.fetchval(
        "INSERT INTO csat_responses (ticket_id, customer_id, agent_id, kind, sent_at) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id", ticket_id, customer_id, agent_id, kind, now)
    return response_id


@dataclass(frozen=True)
class Survey:
    """A survey as its page and its answer see it."""

    id: int
    kind: SurveyKind
    ticket_id: int | None
    ticket_number: int | None
    team: str | None
    customer_name: str | None
    score: int | None
    comment: str | None
    answered_at: datetime | None


async def survey(conn: asyncpg.Connection, response_id: int, *, lock: bool = False) -> Survey | None:
    row = await conn.fetchrow(
        "SELECT r.id, r.kind, r.ticket_id, t.number, tm.name AS team, c.name AS customer_name, r.score, r.comment,"
        " r.answered_at FROM csat_responses r LEFT JOIN tickets t ON t.id = r.ticket_id"
        " LEFT JOIN teams tm ON tm.id = t.team_id JOIN customers c ON c.id = r.customer_id"
        f" WHERE r.id = $1{' FOR UPDATE OF r' if lock else ''}", response_id)
    if row is None:
        return None
    return Survey(row["id"], row["kind"], row["ticket_id"], row["number"], row["team"], row["customer_name"],
                  row["score"], row["comment"], row["answered_at"])


async def record_score(conn: asyncpg.Connection, response_id: int, score: int, now: datetime) -> None:
    await conn.execute("UPDATE csat_responses SET score = $2, answered_at = $3 WHERE id = $1",
                       response_id, score, now)


async def record_comment(conn: asyncpg.Connection, response_id: int, comment: str) -> None:
    await conn.execute("UPDATE csat_responses SET comment = $2 WHERE id = $1", response_id, comment)


@dataclass(frozen=True)
class Rating:
    """A survey of one of the customer's tickets, as the ticket page lists it."""

    ticket_number: int | None
    kind: SurveyKind
    score: int | None
    comment: str | None
    sent_at: datetime
    answered_at: datetime | None


@dataclass(frozen=True)
class TicketFeedback:
    """The ticket page's feedback panel: what was decided about this ticket and the customer's surveys."""

    decision: Outcome | None
    decided_at: datetime | None
    ratings: list[Rating]


async def feedback(conn: asyncpg.Connection, number: int, limit: int = 20) -> TicketFeedback | None:
    """None when there is no ticket `number`."""
    row = await conn.fetchrow(
        "SELECT t.customer_id, d.outcome, d.decided_at FROM tickets t"
        " LEFT JOIN csat_decisions d ON d.ticket_id = t.id WHERE t.number = $1", number)
    if row is None:
        return None
    ratings = await conn.fetch(
        "SELECT t.number, r.kind, r.score, r.comment, r.sent_at, r.answered_at FROM tickets t"
        " JOIN csat_responses r ON r.ticket_id = t.id WHERE t.customer_id = $1"
        " ORDER BY r.sent_at DESC, r.id DESC LIMIT $2", row["customer_id"], limit)
    return TicketFeedback(row["outcome"], row["decided_at"],
                          [Rating(r["number"], r["kind"], r["score"], r["comment"], r["sent_at"], r["answered_at"])
                           for r in ratings])
