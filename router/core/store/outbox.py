"""The durable outbox: everything we send (acks, replies, surveys, Slack alerts) is a row first.

Delivery guarantees (SPEC §2.10):
- an item is queued in the same transaction as the change that causes it, under a unique
  idempotency key, so a retried request or a second process never queues it twice;
- the dispatcher *leases* due items (`FOR UPDATE SKIP LOCKED`, then `next_attempt_at` pushed past
  the lease) and sends outside any transaction; success marks the row `sent`;
- a crash after sending but before marking leaves the row leased: after the lease it is sent
  again. That is the bounded duplicate window — at most one extra delivery per crash, and only
  for senders whose platform cannot dedupe. Senders pass the idempotency key where the platform
  accepts one (email: the Message-ID is derived from it, so receivers and our own threading see
  the same message);
- failures back off exponentially (with jitter) and after `MAX_ATTEMPTS` the item is `dead`,
  visible in `/metrics` and the ticket, for a person to look at.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from router.core.store import events
from router.core.clock import Clock

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
BASE_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(hours=1)
BATCH = 20


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idempotency_key: str
    kind: str
    channel: str
    ticket_id: int | None
    payload: dict[str, Any]
    attempts: int


class PermanentDeliveryError(Exception):
    """The platform refused the item for good (bad address, blocked bot): do not retry."""


class Sender(Protocol):
    async def send(self, item: OutboxItem) -> None:
        """Deliver the item or raise; any exception other than PermanentDeliveryError is retried."""


async def enqueue(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, payload: dict[str, Any],
                  now: datetime, ticket_id: int | None = None, customer_id: int | None = None) -> int | None:
    """Queue an item; returns its id, or None when an item with this key already exists."""
    return await conn.fetchval(
        "INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, customer_id, payload, created_at,"
        " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        key, kind, channel, ticket_id, customer_id, payload, now)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with ±20 % jitter, so a relay outage does not end in a thundering herd."""
    base = min(BASE_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return base * (0.8 + 0.4 * (rng or random).random())


class Dispatcher:
    """Leases due outbox items and hands each to the sender for its channel."""

    def __init__(self, pool: asyncpg.Pool, senders: Mapping[str, Sender], clock: Clock, metrics: Any = None):
        self.pool = pool
        self.senders = senders
        self.clock = clock
        self.metrics = metrics

    async def lease(self) -> list[OutboxItem]:
        now = self.clock()
        channels = list(self.senders)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1"
                " AND channel = ANY($3::text[]) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, idempotency_key, kind, channel, ticket_id, payload, attempts",
                now, now + LEASE, channels, BATCH)
        return [OutboxItem(**dict(row)) for row in rows]

    async def deliver(self, item: OutboxItem) -> bool:
        sender = self.senders[item.channel]
        try:
            await sender.send(item)
        except PermanentDeliveryError as exc:
            await self._failed(item, str(exc), permanent=True)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("delivery of outbox item %s (%s) failed: %r", item.id, item.channel, exc)
            await self._failed(item, repr(exc), permanent=False)
            return False
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE outbox SET status = 'sent', sent_at = $2, last_error = NULL WHERE id = $1",
                               item.id, now)
            await events.record(conn, item.ticket_id, "outbox.sent", {"id": item.id, "kind": item.kind}, now)
        if self.metrics is not None:
            self.metrics.outbox_sent.labels(item.channel).inc()
        return True

    async def _failed(self, item: OutboxItem, error: str, *, permanent: bool) -> None:
        now = self.clock()
        dead = permanent or item.attempts >= MAX_ATTEMPTS
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE outbox SET status = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
                item.id, "dead" if dead else "pending", now + backoff(item.attempts), error[:2000])
            if dead:
                await events.record(conn, item.ticket_id, "outbox.dead",
                                    {"id": item.id, "kind": item.kind, "error": error[:500]}, now)
        if self.metrics is not None:
            self.metrics.outbox_failures.labels(item.channel).inc()

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many were delivered."""
        items = await self.lease()
        results = await asyncio.gather(*(self.deliver(item) for item in items))
        return sum(results)
