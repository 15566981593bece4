"""The SLA monitor: finds clocks that crossed a warning level or their due time and records each
warning level and each breach exactly once, however many `router serve` processes run it.

Exactly once: candidate rows are taken with `FOR UPDATE SKIP LOCKED` and marked (`warned_at` and
`warn_level`, `breached_at`) in the same statement that records them, so a second monitor skips or
no longer matches them; the `sla_events` unique key (ticket, target, cycle, kind, level) and the
outbox idempotency key back that up. Every scan reads a partial index holding only running clocks
that have something left to fire, so a scan stays cheap with millions of tickets.

Three scans per pass:
- the breach, at `due_at`: one set-based statement;
- the first warning level, at `warn_at` (set by `sla.clocks`): the due clocks are read, the time of
  their next level is computed here, and one statement records the warning and plans that level
  (one set-based statement when no policies are given);
- the later levels (`warn_at = [0.5, 0.75, 0.9]`): when each falls due needs the business calendar,
  so the candidates are read, the next level is computed here (`policy.next_warning`), and one
  statement records what fired. The time of the next level is kept with the `due_at` it was
  computed from (`warn_basis`); when a resume or a new policy moves `due_at`, it is computed again.
When the monitor was away long enough for several levels to pass, the first level and the highest
one passed fire; those in between are moot.

Each recording statement also writes the ticket event and the Slack alert item: the monitor is the
one writer of `sla_events`, and these rows must commit with the marker or not at all (exactly
once). That is the documented multi-table CTE exception to "one writer per table".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sla.policy import SlaRules, next_warning

log = logging.getLogger(__name__)

SCAN_LIMIT = 500

_ANNOUNCE = (
    " described AS (SELECT r.*, $4::text || t.number AS ref,"
    "  jsonb_build_object('ticket_ref', $4::text || t.number, 'target', r.target, 'cycle', r.cycle,"
    "  'kind', $2::text, 'level', r.level, 'due_at', r.due_at) AS payload"
    "  FROM recorded r JOIN tickets t ON t.id = r.ticket_id),"
    " announced AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
    "  SELECT ticket_id, 'sla.' || $2, payload, $1 FROM described),"
    " alerted AS (INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, payload, created_at,"
    "  next_attempt_at)"
    "  SELECT 'sla:' || ticket_id || ':' || target || ':' || cycle || ':' || $2 || ':' || level, 'sla_alert',"
    "  'slack', ticket_id, payload, $1, $1 FROM described WHERE $3 ON CONFLICT (idempotency_key) DO NOTHING)"
    " SELECT ticket_id, ref, target, cycle, level, due_at FROM described"
)
"""After a CTE `recorded` (ticket_id, target, cycle, level, due_at): the ticket events and, with $3
(Slack on), the alert items. $1 now, $2 the kind, $4 the reference prefix."""

_RECORD = (
    " recorded AS (INSERT INTO sla_events (ticket_id, target, cycle, kind, level, due_at, created_at)"
    "  SELECT ticket_id, target, cycle, $2, level, due_at, $1 FROM marked ON CONFLICT DO NOTHING"
    "  RETURNING ticket_id, target, cycle, level, due_at),"
)

_SCANS = {
    # kind: (time column, marker columns set to now, other assignments, partial-index predicate)
    "warning": ("warn_at", "warned_at", ", warn_level = 1, next_warn_at = NULL, warn_basis = NULL",
                "warned_at IS NULL"),
    "breach": ("due_at", "breached_at", "", "breached_at IS NULL"),
}

_LEVELS_DUE = (
    "met_at IS NULL AND paused_at IS NULL AND warned_at IS NOT NULL AND breached_at IS NULL"
    " AND (next_warn_at <= $1 OR warn_basis IS DISTINCT FROM due_at)"
)
"""Clocks whose next warning level may be due: its time has come, or was never computed for the
clock's current due time."""


@dataclass(frozen=True)
class SlaEvent:
    ticket_id: int
    ticket_ref: str
    target: str
    cycle: int
    kind: str
    due_at: datetime
    level: int = 1


async def scan(conn: asyncpg.Connection, now: datetime, *, alerts: bool, ref_prefix: str,
               rules: SlaRules | None = None) -> list[SlaEvent]:
    """One pass, inside the caller's transaction: marks the clocks, records the SLA events, the
    ticket events and (with `alerts`, i.e. Slack on) the alert outbox items. Tickets are named
    `ref_prefix` + number. With `rules` (the policies in force) later warning levels fire too;
    without, each clock warns once. Returns the events recorded by this pass."""
    if rules is None:
        fired = await _scan_kind(conn, now, "warning", alerts, ref_prefix)
    else:
        fired = await _scan_first_levels(conn, now, rules, alerts, ref_prefix)
        fired += await _scan_levels(conn, now, rules, alerts, ref_prefix)
    return fired + await _scan_kind(conn, now, "breach", alerts, ref_prefix)


async def _scan_kind(conn: asyncpg.Connection, now: datetime, kind: str, alerts: bool,
                     ref_prefix: str) -> list[SlaEvent]:
    time_column, marker, more, fresh = _SCANS[kind]
    rows = await conn.fetch(
        f"WITH due AS (SELECT ticket_id, target FROM sla_targets"
        f"  WHERE met_at IS NULL AND paused_at IS NULL AND {fresh} AND {time_column} <= $1"
        f"  ORDER BY {time_column} LIMIT {SCAN_LIMIT} FOR UPDATE SKIP LOCKED),"
        f" marked AS (UPDATE sla_targets s SET {marker} = $1{more} FROM due"
        "  WHERE s.ticket_id = due.ticket_id AND s.target = due.target"
        "  RETURNING s.ticket_id, s.target, s.cycle, 1 AS level, s.due_at),"
        + _RECORD + _ANNOUNCE,
        now, kind, alerts, ref_prefix)
    return [_event(row, kind) for row in rows]


async def _scan_first_levels(conn: asyncpg.Connection, now: datetime, rules: SlaRules, alerts: bool,
                             ref_prefix: str) -> list[SlaEvent]:
    """The first warning level, with the time of the next level planned in the same write: marking
    the clock and then planning its next level in a second update doubled the rows written per
    warning (a dead tuple and an index entry each), the largest cost of a busy scan. When later
    levels have passed too (the monitor was away), `next_warn_at` is left due, so `_scan_levels`
    fires the highest of them in this same pass."""
    candidates = await conn.fetch(
        "SELECT ticket_id, target, policy, started_at, paused_for FROM sla_targets"
        "  WHERE met_at IS NULL AND paused_at IS NULL AND warned_at IS NULL AND warn_at <= $1"
        f"  ORDER BY warn_at LIMIT {SCAN_LIMIT} FOR UPDATE SKIP LOCKED", now)
    if not candidates:
        return []
    next_times: list[datetime | None] = []
    for row in candidates:
        policy = rules.named(row["policy"])
        if policy is None:  # a policy removed from the config: no more levels to tell
            next_times.append(None)
            continue
        step = next_warning(policy, row["target"], rules.calendar_of(policy), started_at=row["started_at"],
                            paused_for=row["paused_for"], fired=1, now=now)
        next_times.append(now if step.fire is not None else step.next_at)
    rows = await conn.fetch(
        "WITH plan AS (SELECT * FROM unnest($5::bigint[], $6::text[], $7::timestamptz[])"
        "  AS p(ticket_id, target, next_at)),"
        " marked AS (UPDATE sla_targets s SET warned_at = $1, warn_level = 1, next_warn_at = plan.next_at,"
        "  warn_basis = s.due_at FROM plan WHERE s.ticket_id = plan.ticket_id AND s.target = plan.target"
        "  RETURNING s.ticket_id, s.target, s.cycle, 1 AS level, s.due_at),"
        + _RECORD + _ANNOUNCE,
        now, "warning", alerts, ref_prefix, [row["ticket_id"] for row in candidates],
        [row["target"] for row in candidates], next_times)
    return [_event(row, "warning") for row in rows]


async def _scan_levels(conn: asyncpg.Connection, now: datetime, rules: SlaRules, alerts: bool,
                       ref_prefix: str) -> list[SlaEvent]:
    candidates = await conn.fetch(
        "SELECT ticket_id, target, policy, started_at, paused_for, warn_level FROM sla_targets"
        f" WHERE {_LEVELS_DUE} ORDER BY next_warn_at NULLS FIRST LIMIT {SCAN_LIMIT} FOR UPDATE SKIP LOCKED", now)
    if not candidates:
        return []
    plans: list[tuple[int, str, int | None, datetime | None]] = []
    for row in candidates:
        policy = rules.named(row["policy"])
        if policy is None:  # a policy removed from the config: no more levels to tell
            plans.append((row["ticket_id"], row["target"], None, None))
            continue
        step = next_warning(policy, row["target"], rules.calendar_of(policy), started_at=row["started_at"],
                            paused_for=row["paused_for"], fired=row["warn_level"], now=now)
        plans.append((row["ticket_id"], row["target"], step.fire, step.next_at))
    ticket_ids, targets, levels, next_times = (list(column) for column in zip(*plans, strict=True))
    rows = await conn.fetch(
        "WITH plan AS (SELECT * FROM unnest($5::bigint[], $6::text[], $7::int[], $8::timestamptz[])"
        "  AS p(ticket_id, target, fire, next_at)),"
        " marked AS (UPDATE sla_targets s SET warn_level = COALESCE(plan.fire, s.warn_level),"
        "  next_warn_at = plan.next_at, warn_basis = s.due_at FROM plan"
        "  WHERE s.ticket_id = plan.ticket_id AND s.target = plan.target AND plan.fire IS NOT NULL"
        "  RETURNING s.ticket_id, s.target, s.cycle, plan.fire AS level, s.due_at),"
        " waiting AS (UPDATE sla_targets s SET next_warn_at = plan.next_at, warn_basis = s.due_at FROM plan"
        "  WHERE s.ticket_id = plan.ticket_id AND s.target = plan.target AND plan.fire IS NULL),"
        + _RECORD + _ANNOUNCE,
        now, "warning", alerts, ref_prefix, ticket_ids, targets, levels, next_times)
    return [_event(row, "warning") for row in rows]


def _event(row: asyncpg.Record, kind: str) -> SlaEvent:
    return SlaEvent(row["ticket_id"], row["ref"], row["target"], row["cycle"], kind, row["due_at"], row["level"])


async def scan_once(pool: asyncpg.Pool, now: datetime, *, alerts: bool, ref_prefix: str,
                    rules: SlaRules | None = None) -> list[SlaEvent]:
    """One monitor pass in its own transaction; returns the events that fired."""
    async with pool.acquire() as conn, conn.transaction():
        fired = await scan(conn, now, alerts=alerts, ref_prefix=ref_prefix, rules=rules)
    for event in fired:
        log.info("SLA %s (level %s): %s %s (due %s)", event.kind, event.level, event.ticket_ref, event.target,
                 event.due_at)
    return fired


async def next_due(conn: asyncpg.Connection) -> datetime | None:
    """The earliest time anything may fire (first warning, later level, breach), read from the three
    partial indexes' first entries: the monitor sleeps until then rather than polling blindly."""
    found: datetime | None = await conn.fetchval(
        "SELECT LEAST("
        " (SELECT min(warn_at) FROM sla_targets WHERE met_at IS NULL AND paused_at IS NULL AND warned_at IS NULL),"
        " (SELECT min(next_warn_at) FROM sla_targets WHERE met_at IS NULL AND paused_at IS NULL"
        "  AND warned_at IS NOT NULL AND breached_at IS NULL),"
        " (SELECT min(due_at) FROM sla_targets WHERE met_at IS NULL AND paused_at IS NULL AND breached_at IS NULL))")
    return found
