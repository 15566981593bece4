"""Chat delivery: what the outbox does with a message to a chat visitor.

The message reached the visitor's conversation in the transaction that queued it, and their open
widgets at its commit (`store.chat`, `web.chat_hub`): the outbox item only decides the offline
fallback. A visitor with a widget open (in any process) has it; one who left moments ago is given
`offline_after` to come back; after that, an agent's reply also goes by email when the customer
has a *verified* address (a typed one is a claim, never a destination: SPEC §2.4). Either way the
widget shows it on their next visit.

Like Slack's, this delivery runs its own dispatcher over the `chat` items: the sender reads the
database, and `workers.senders_for(config)` builds senders from the configuration alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from router.config import Config
from router.core.clock import Clock
from router.core.delivery import OutboxItem, RetryLater
from router.core.outbound import Dispatcher, queue_outbound
from router.core.store import chat
from router.services import Services

log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0


class ChatDelivery:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, config: Callable[[], Config]) -> None:
        self.pool = pool
        self.clock = clock
        self.config = config

    async def send(self, item: OutboxItem) -> None:
        visitor = str(item.payload.get("to", ""))
        now = self.clock()
        async with self.pool.acquire() as conn:
            reach = await chat.reach(conn, visitor)
        if reach.online_until is not None and reach.online_until > now:
            return  # a widget is open: it has the message already
        config = self.config()
        if reach.online_until is not None and now < reach.online_until + config.chat.offline_after:
            raise RetryLater(reach.online_until + config.chat.offline_after - now,
                             "the visitor left the chat moments ago; waiting to see whether they come back")
        if item.kind != "reply" or reach.verified_email is None or item.ticket_id is None:
            log.info("chat item %s: the visitor is away; it waits in their conversation", item.id)
            return
        ref = str(item.payload.get("ticket_ref", ""))
        async with self.pool.acquire() as conn, conn.transaction():
            await queue_outbound(
                conn, key=f"{item.idempotency_key}:email", kind="reply", channel="email", ticket_id=item.ticket_id,
                customer_id=reach.customer_id, to=reach.verified_email,
                subject=str(item.payload.get("subject") or f"Re: [{ref}]"),
                text=str(item.payload.get("text", "")), now=now,
                extra={"ticket_ref": ref, "language": item.payload.get("language"), "chat_fallback": True},
                mail_domain=config.service.support_address.partition("@")[2], secret=config.settings.secret_key)
        log.info("chat item %s: the visitor left; the reply goes to their verified email too", item.id)


async def chat_worker(svc: Services) -> None:
    from router.workers import forever

    pool = svc.require_pool()
    delivery = ChatDelivery(pool, svc.clock, lambda: svc.config)
    dispatcher = Dispatcher(pool, {"chat": delivery}, svc.clock, svc.metrics, svc.metrics.dead)
    await forever("chat delivery", dispatcher.run_once, IDLE_SECONDS)
