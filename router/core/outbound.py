"""Delivering what the outbox holds: the item type, the sender port, and the dispatcher.

Delivery guarantees (SPEC §2.10):
- an item is queued in the same transaction as the change that causes it, under a unique
  idempotency key (`store.outbox`), so a retried request or a second process never queues it twice;
- the dispatcher *leases* due items (`FOR UPDATE SKIP LOCKED`; status `sending`, `next_attempt_at`
  pushed past the lease) and sends outside any transaction; the outcome marks the row `sent`,
  `pending` (retry) or `dead`;
- a process killed between lease and outcome leaves the row `sending`: when the lease ends it goes
  dead as "interrupted" (it may or may not have arrived) and is never sent again by itself — at most
  once, never twice; the agent sees it on the ticket and can send again. Email Message-IDs are
  derived from the idempotency key, so receivers and our own threading agree on the message;
- failures back off exponentially (with jitter) and after `MAX_ATTEMPTS` the item is `dead`,
  visible in `/metrics` and the ticket, for a person to look at;
- a platform that asks us to slow down (HTTP 429 `Retry-After`) gets exactly the wait it asked
  for (`RetryLater`), and that attempt does not count towards `MAX_ATTEMPTS`;
- a refusal that retrying cannot fix (`PermanentDeliveryError`) is dead at once; a `Refused`
  carries a short reason code ("channel_not_found") that labels `router_outbox_dead_total`.

Channels implement `delivery.Sender` (re-exported by `channels.base`); the core never imports them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from router.core.clock import Clock
from router.core.delivery import OutboxItem, PermanentDeliveryError, Refused, RetryLater, Sender
from router.core.store import chat, outbox

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(hours=1)


DeadCounter = Callable[[str, str], None]
"""Called with (channel, reason) for every item that goes dead."""


class DeliveryCounters(Protocol):
    def delivered(self, channel: str) -> None: ...
    def failed(self, channel: str) -> None: ...


def email_message_id(key: str, domain: str, secret: str) -> str:
    """A stable Message-ID (without angle brackets) for the outbox item `key`: an HMAC, so nobody
    can compute the id of our mail to a customer and slip a message into their thread."""
    digest = hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{digest}@{domain}"


async def queue_outbound(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, ticket_id: int,
                         customer_id: int | None, to: str, subject: str | None, text: str, now: datetime,
                         mail_domain: str, secret: str, author_agent_id: int | None = None,
                         extra: dict[str, Any] | None = None, unless_sent_since: datetime | None = None) -> int | None:
    """A message to a customer: on the ticket's timeline and in the outbox together (see
    `store.outbox.queue_message` for when nothing is queued). Email gets its Message-ID from the
    idempotency key, so the message row, the mail the relay receives (even when re-sent after a
    crash) and the customer's `In-Reply-To` all agree."""
    external_id = email_message_id(key, mail_domain, secret) if channel == "email" else f"outbox:{key}"
    payload = {"to": to, "subject": subject, "text": text, "message_id": external_id, **(extra or {})}
    message_id = await outbox.queue_message(
        conn, key=key, kind=kind, channel=channel, ticket_id=ticket_id, customer_id=customer_id,
        external_id=external_id, subject=subject, text=text, payload=payload, now=now,
        author_agent_id=author_agent_id, unless_sent_since=unless_sent_since)
    if channel == "chat" and message_id is not None:
        # Into the visitor's conversation in this transaction: pushed to their widget at commit, not
        # when the outbox gets to it (`store.chat`); the outbox item then only decides the fallback.
        await chat.record_outbound(conn, to, message_id=message_id, kind=kind, ticket_id=ticket_id, text=text,
                                   author_agent_id=author_agent_id, now=now)
    return message_id


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with ±20 % jitter, so a relay outage does not end in a thundering herd."""
    base = min(BASE_BACKOFF * (1 << max(attempts - 1, 0)), MAX_BACKOFF)
    jitter = rng.random() if rng is not None else random.random()
    return base * (0.8 + 0.4 * jitter)


class Dispatcher:
    """Leases due outbox items and hands each to the sender for its channel."""

    def __init__(self, pool: asyncpg.Pool, senders: Mapping[str, Sender], clock: Clock,
                 counters: DeliveryCounters | None = None, dead: DeadCounter | None = None):
        self.pool = pool
        self.senders = senders
        self.clock = clock
        self.counters = counters
        self.dead = dead

    async def lease(self) -> list[OutboxItem]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await outbox.lease(conn, list(self.senders), self.clock())
        return [OutboxItem(**row) for row in rows]

    async def deliver(self, item: OutboxItem) -> bool:
        sender = self.senders[item.channel]
        try:
            await sender.send(item)
        except PermanentDeliveryError as exc:
            await self._failed(item, str(exc), permanent=True, reason=exc.reason if isinstance(exc, Refused)
                               else "refused")
            return False
        except RetryLater as exc:
            log.info("outbox item %s (%s): the platform asked to wait %s: %s", item.id, item.channel, exc.after, exc)
            async with self.pool.acquire() as conn, conn.transaction():
                await outbox.retry_later(conn, item.id, str(exc), self.clock() + exc.after)
            if self.counters is not None:
                self.counters.failed(item.channel)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("delivery of outbox item %s (%s) failed: %r", item.id, item.channel, exc)
            await self._failed(item, repr(exc), permanent=False)
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            await outbox.mark_sent(conn, item.id, item.ticket_id, item.kind, self.clock())
        if self.counters is not None:
            self.counters.delivered(item.channel)
        return True

    async def _failed(self, item: OutboxItem, error: str, *, permanent: bool, reason: str = "gave_up") -> None:
        now = self.clock()
        dead = permanent or item.attempts >= MAX_ATTEMPTS
        async with self.pool.acquire() as conn, conn.transaction():
            await outbox.mark_failed(conn, item.id, item.ticket_id, item.kind, error, dead=dead,
                                     retry_at=now + backoff(item.attempts), now=now)
        if self.counters is not None:
            self.counters.failed(item.channel)
        if dead and self.dead is not None:
            self.dead(item.channel, reason)

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many were delivered."""
        items = await self.lease()
        results = await asyncio.gather(*(self.deliver(item) for item in items))
        return sum(results)
