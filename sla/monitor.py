"""The SLA monitor: finds clocks that crossed their warning point or due time and records each
warning and breach exactly once, however many `router serve` processes run it.

Exactly once: candidate rows are taken with `FOR UPDATE SKIP LOCKED` and marked (`warned_at` /
`breached_at`) in the same statement, so a second monitor skips or no longer matches them; the
`sla_events` unique key (ticket, target, cycle, kind) and the outbox idempotency key back that up.
Both scans use partial indexes holding only running, un-fired clocks, so a scan stays cheap with
millions of tickets.

Each scan is one statement that also writes the ticket event and the Slack alert item: the
monitor is the one writer of `sla_events`, and these two rows must commit with the marker or not
at all (exactly once). That is the documented multi-table CTE exception to "one writer per table".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

log = logging.getLogger(__name__)

SCAN_LIMIT = 500
_SCANS = {
    # kind: (time column, marker column)
    "warning": ("warn_at", "warned_at"),
    "breach": ("due_at", "breached_at"),
}


@dataclass(frozen=True)
class SlaEvent:
    ticket_id: int
    ticket_ref: str
    target: str
    cycle: int
    kind: str
    due_at: datetime


async def scan(conn: asyncpg.Connection, now: datetime, *, alerts: bool, ref_prefix: str) -> list[SlaEvent]:
    """One pass, inside the caller's transaction: one set-based statement per kind marks the clocks,
    records the SLA events, the ticket events and (with `alerts`, i.e. Slack on) the alert outbox
    items. Tickets are named `ref_prefix` + number. Returns the events recorded by this pass."""
    fired: list[SlaEvent] = []
    for kind, (time_column, marker) in _SCANS.items():
        rows = await conn.fetch(
            f"WITH due AS (SELECT ticket_id, target FROM sla_targets"
            f"  WHERE met_at IS NULL AND paused_at IS NULL AND {marker} IS NULL AND {time_column} <= $1"
            f"  ORDER BY {time_column} LIMIT {SCAN_LIMIT} FOR UPDATE SKIP LOCKED),"
            f" marked AS (UPDATE sla_targets s SET {marker} = $1 FROM due"
            "  WHERE s.ticket_id = due.ticket_id AND s.target = due.target"
            "  RETURNING s.ticket_id, s.target, s.cycle, s.due_at),"
            " recorded AS (INSERT INTO sla_events (ticket_id, target, cycle, kind, due_at, created_at)"
            "  SELECT ticket_id, target, cycle, $2, due_at, $1 FROM marked ON CONFLICT DO NOTHING"
            "  RETURNING ticket_id, target, cycle, due_at),"
            " described AS (SELECT r.*, $4::text || t.number AS ref,"
            "  jsonb_build_object('ticket_ref', $4::text || t.number, 'target', r.target, 'cycle', r.cycle,"
            "  'kind', $2::text, 'due_at', r.due_at) AS payload"
            "  FROM recorded r JOIN tickets t ON t.id = r.ticket_id),"
            " announced AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
            "  SELECT ticket_id, 'sla.' || $2, payload, $1 FROM described),"
            " alerted AS (INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, payload, created_at,"
            "  next_attempt_at)"
            "  SELECT 'sla:' || ticket_id || ':' || target || ':' || cycle || ':' || $2, 'sla_alert', 'slack',"
            "  ticket_id, payload, $1, $1 FROM described WHERE $3 ON CONFLICT (idempotency_key) DO NOTHING)"
            " SELECT ticket_id, ref, target, cycle, due_at FROM described",
            now, kind, alerts, ref_prefix)
        fired.extend(SlaEvent(row["ticket_id"], row["ref"], row["target"], row["cycle"], kind, row["due_at"])
                     for row in rows)
    return fired


async def scan_once(pool: asyncpg.Pool, now: datetime, *, alerts: bool, ref_prefix: str) -> list[SlaEvent]:
    """One monitor pass in its own transaction; returns the events that fired."""
    async with pool.acquire() as conn, conn.transaction():
        fired = await scan(conn, now, alerts=alerts, ref_prefix=ref_prefix)
    for event in fired:
        log.info("SLA %s: %s %s (due %s)", event.kind, event.ticket_ref, event.target, event.due_at)
    return fired
