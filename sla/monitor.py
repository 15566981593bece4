"""The SLA monitor: finds clocks that crossed their warning point or due time and records each
warning and breach exactly once, however many `router serve` processes run it.

Exactly once: candidate rows are taken with `FOR UPDATE SKIP LOCKED` and marked (`warned_at` /
`breached_at`) in the same statement, so a second monitor skips or no longer matches them; the
`sla_events` unique key (ticket, target, cycle, kind) backs that up. Both scans use partial
indexes holding only running, un-fired clocks, so a scan stays cheap with millions of tickets.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from router import events, outbox
from router.clock import Clock
from router.config import Config
from router.errors import DATABASE_DOWN_ERRORS

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


async def scan(conn: asyncpg.Connection, config: Config, now: datetime) -> list[SlaEvent]:
    """One pass, inside the caller's transaction. Returns the events recorded by this pass."""
    fired: list[SlaEvent] = []
    for kind, (time_column, marker) in _SCANS.items():
        rows = await conn.fetch(
            f"UPDATE sla_targets s SET {marker} = $1 FROM tickets t WHERE t.id = s.ticket_id"
            f" AND (s.ticket_id, s.target) IN (SELECT ticket_id, target FROM sla_targets"
            f"  WHERE met_at IS NULL AND paused_at IS NULL AND {marker} IS NULL AND {time_column} <= $1"
            f"  ORDER BY {time_column} LIMIT {SCAN_LIMIT} FOR UPDATE SKIP LOCKED)"
            " RETURNING s.ticket_id, s.target, s.cycle, s.due_at, t.number",
            now)
        for row in rows:
            inserted = await conn.fetchval(
                "INSERT INTO sla_events (ticket_id, target, cycle, kind, due_at, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
                row["ticket_id"], row["target"], row["cycle"], kind, row["due_at"], now)
            if inserted is None:
                continue
            event = SlaEvent(row["ticket_id"], f"T-{row['number']}", row["target"], row["cycle"], kind,
                             row["due_at"])
            fired.append(event)
            await _announce(conn, config, event, now)
    return fired


async def _announce(conn: asyncpg.Connection, config: Config, event: SlaEvent, now: datetime) -> None:
    payload = {"ticket_ref": event.ticket_ref, "target": event.target, "cycle": event.cycle,
               "kind": event.kind, "due_at": event.due_at.isoformat()}
    await events.record(conn, event.ticket_id, f"sla.{event.kind}", payload, now)
    if config.settings.slack_bot_token:
        await outbox.enqueue(
            conn, key=f"sla:{event.ticket_id}:{event.target}:{event.cycle}:{event.kind}", kind="sla_alert",
            channel="slack", payload=payload, now=now, ticket_id=event.ticket_id)


async def run_forever(pool: asyncpg.Pool, config: Config, clock: Clock, metrics: object | None = None,
                      interval: float = 5.0) -> None:
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                fired = await scan(conn, config, clock())
            for event in fired:
                log.info("SLA %s: %s %s (due %s)", event.kind, event.ticket_ref, event.target, event.due_at)
                if metrics is not None:
                    metrics.sla_events.labels(event.target, event.kind).inc()
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("SLA monitor: database unavailable (%r); retrying", exc)
            fired = []
        if len(fired) < SCAN_LIMIT:
            await asyncio.sleep(interval)
