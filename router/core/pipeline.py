"""The ingest pipeline: dedupe → identity → thread → classify → route → SLA → ack, in ONE transaction.

Channels call `Pipeline.ingest` and acknowledge their platform only after it returns, which is
after the commit: durability before acknowledgement (SPEC §2.2).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from agents import assignment
from agents import store as agent_store
from router.core import acks
from router.core.store import attachments, customers, tickets
from router.core.classify import classify, higher_priority
from router.core.clock import Clock, system_clock
from router.config import Config
from router.core.errors import InvalidInput
from router.core.inbound import InboundMessage, storable_text
from sla import clocks

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 200_000
CONFLICT_RETRIES = 3


class _Redelivery(Exception):
    """The platform delivered a message we already stored; the attempt's transaction is undone."""


@dataclass(frozen=True)
class IngestResult:
    message_id: int
    ticket_id: int
    ticket_ref: str
    duplicate: bool
    new_ticket: bool = False
    reopened: bool = False

    def as_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "ticket_ref": self.ticket_ref, "duplicate": self.duplicate}


class Pipeline:
    """Owns the steps that turn an `InboundMessage` into stored, threaded, routed work."""

    def __init__(self, config: Config, clock: Clock = system_clock):
        self.config = config
        self.clock = clock
        # Tickets whose topic names no team wait in the first configured team's queue.
        self.default_team = config.teams[0].name if config.teams else None

    async def ingest(self, pool: asyncpg.Pool, message: InboundMessage) -> IngestResult:
        validate(message)
        external_id = message.external_id or f"gen:{uuid.uuid4().hex}"
        try:
            for attempt in range(1, CONFLICT_RETRIES + 1):
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        return await self._ingest(conn, message, external_id)
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    # PostgreSQL aborted us to break a lock cycle; nothing was stored: run again.
                    if attempt == CONFLICT_RETRIES:
                        raise
                    log.info("ingest of %s:%s hit a lock conflict; retrying", message.channel, external_id)
            raise AssertionError("unreachable")
        except _Redelivery:
            # Everything this attempt did was rolled back; answer with what was stored the first time.
            async with pool.acquire() as conn:
                seen = await tickets.find_message(conn, message.channel, external_id)
            return IngestResult(seen["id"], seen["ticket_id"], tickets.ref(seen["number"]), duplicate=True)

    async def _ingest(self, conn: asyncpg.Connection, message: InboundMessage, external_id: str) -> IngestResult:
        now = self.clock()
        customer = await customers.resolve(conn, self.config, message.identities, message.sender_name, now)
        found = classify(message.subject, message.text, self.config.topics, self.config.service.urgent_words,
                         customer.tier)
        automated = message.auto_kind is not None
        fields = dict(
            channel=message.channel, direction="in", external_id=external_id, body_text=message.text,
            now=message.received_at or now, sender_identity_id=customer.sender_identity_id,
            sender_name=message.sender_name, subject=message.subject, body_html=message.html,
            quoted_text=message.quoted_text, raw_ref=message.raw_ref, auto_kind=message.auto_kind,
            metadata=message.metadata)
        received = ("message.received", {"channel": message.channel, "auto": automated})

        if not (automated or customer.is_new or message.thread_refs or message.ticket_number_hint is not None):
            joined = await tickets.join_active_ticket(conn, customer.id, priority=found.priority, events=[received],
                                                      **fields)
            if joined is not None:
                ticket = joined.ticket
                await self._stored(conn, message, joined.message_id)
                await self._customer_wrote(conn, ticket, customer, was_pending=ticket["previous_status"] == "pending",
                                           previous_priority=ticket["previous_priority"], reopened=False, now=now)
                return IngestResult(joined.message_id, ticket["id"], tickets.ref(ticket["number"]), duplicate=False)

        choice = await tickets.choose_thread(
            conn, customer.id, thread_refs=message.thread_refs, number_hint=message.ticket_number_hint,
            now=now, reopen_window=self.config.service.reopen_window, new_customer=customer.is_new)
        policy = None
        happened: list[tuple[str, dict[str, object]]] = []
        if choice.action == "new":
            if not automated:
                policy = clocks.policy_for(self.config, priority=found.priority, tier=customer.tier,
                                           channel=message.channel, topic=found.topic)
            ticket = await tickets.create(
                conn, customer_id=customer.id, channel=message.channel,
                subject=message.subject or _subject_from(message.text),
                status="closed" if automated else "open", priority=found.priority, topic=found.topic,
                skill=found.skill, language=found.language, team=found.team or self.default_team,
                sla_policy=policy.name if policy else None, previous_ticket_id=choice.previous_ticket_id, now=now)
            happened.append(("ticket.created", {"ref": tickets.ref(ticket["number"]), "channel": message.channel}))
        else:
            # Auto-replies and bounces are kept on the thread but never count as the customer writing.
            ticket = choice.ticket
        wrote = None
        if choice.action != "new" and not automated:
            wrote = tickets.CustomerWrote(reopen=choice.action == "reopen",
                                          priority=higher_priority(choice.ticket["priority"], found.priority))
            if wrote.reopen:
                happened.append(("ticket.reopened", {"ref": tickets.ref(ticket["number"])}))
        happened.append(received)

        inserted = await tickets.insert_message(conn, ticket_id=ticket["id"], customer_id=customer.id,
                                                events=happened, customer_wrote=wrote, **fields)
        await self._stored(conn, message, inserted.message_id)
        ticket = inserted.ticket or ticket
        if not automated:
            if choice.action != "join":
                await self._route(conn, ticket, reopened=choice.action == "reopen", now=now)
            if choice.action == "new":
                due = await clocks.start_ticket(conn, self.config, ticket["id"], policy, now)
                await acks.queue_ack(conn, self.config, message=message, ticket=ticket, customer_id=customer.id,
                                     customer_timezone=customer.timezone, due=due, now=now)
            else:
                await self._customer_wrote(conn, ticket, customer, was_pending=choice.ticket["status"] == "pending",
                                           previous_priority=choice.ticket["priority"],
                                           reopened=choice.action == "reopen", now=now)
        return IngestResult(inserted.message_id, ticket["id"], tickets.ref(ticket["number"]), duplicate=False,
                            new_ticket=choice.action == "new", reopened=choice.action == "reopen")

    async def _stored(self, conn: asyncpg.Connection, message: InboundMessage, message_id: int | None) -> None:
        """The message row exists (else this is a redelivery: undo everything); now its attachments."""
        if message_id is None:
            raise _Redelivery
        if message.attachments:
            await attachments.store(conn, self.config.settings.data_dir, message_id, message.attachments)

    async def _customer_wrote(self, conn: asyncpg.Connection, ticket: asyncpg.Record, customer: customers.Customer,
                              *, was_pending: bool, previous_priority: str, reopened: bool, now: datetime) -> None:
        """SLA effects of a customer message on an existing ticket."""
        if reopened:
            await clocks.reopen(conn, self.config, ticket, now)
        await clocks.customer_wrote(conn, self.config, ticket, was_pending=was_pending, now=now)
        if ticket["priority"] != previous_priority:
            await clocks.recompute(conn, self.config, ticket, customer.tier, now)

    async def _route(self, conn: asyncpg.Connection, ticket: asyncpg.Record, *, reopened: bool,
                     now: datetime) -> None:
        """New work goes to the best agent; a reopened ticket back to its agent. (A follow-up on a
        ticket waiting in the queue is not routed again: the queue drain assigns it.)"""
        if ticket["assignee_id"] is None:
            await assignment.route_ticket(conn, ticket, now)
        elif reopened:
            await agent_store.add_load(conn, ticket["assignee_id"])
            await agent_store.log_routing(conn, ticket["id"], "reopened", "customer wrote again: back to their agent",
                                          now, agent_id=ticket["assignee_id"])


def validate(message: InboundMessage) -> None:
    """Reject what no channel should hand over, before touching the database."""
    if not message.identities:
        raise InvalidInput("the sender has no identity (email, phone or platform id)")
    if not message.text.strip() and not message.attachments:
        raise InvalidInput("the message is empty")
    if len(message.text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"the message text is longer than {MAX_TEXT_CHARS} characters")
    fields = [message.text, message.subject, message.sender_name, message.external_id, message.html,
              message.quoted_text, *message.thread_refs, *(i.value for i in message.identities)]
    for value in fields:
        if value and not storable_text(value):
            raise InvalidInput("the message contains NUL characters or invalid Unicode")


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:80] + ("…" if len(first) > 80 else "")

