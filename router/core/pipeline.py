"""The ingest pipeline: dedupe → identity → thread → classify → route → SLA → ack, in ONE transaction.

Channels call `Pipeline.ingest` and acknowledge their platform only after it returns, which is
after the commit: durability before acknowledgement (SPEC §2.2).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime

import asyncpg

from agents import assignment
from router.config import Config
from router.core import acks
from router.core.classify import classify
from router.core.clock import Clock, system_clock
from router.core.errors import InvalidInput, ServiceUnavailable
from router.core.inbound import MAX_TEXT_CHARS, InboundMessage, IngestResult, storable_text
from router.core.ingest_plan import IngestPlan, plan_ingest
from router.core.merge import merge_customers
from router.core.refs import ref
from router.core.store import attachments, customers, suggestions, tickets
from router.core.store.tickets import NewMessage, NewTicket, Ticket
from sla import clocks
from sla.policy import SlaPolicy, TicketFacts

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
SEARCHABLE_IDENTITIES = ("email", "phone")
"""Sender identities a message is found by; platform user ids are nothing an agent types."""


class _Redelivery(Exception):
    """The platform delivered a message we already stored; the attempt's transaction is undone."""


class Pipeline:
    """Owns the steps that turn an `InboundMessage` into stored, threaded, routed work. What each
    step does for a message is decided by `plan_ingest`; this class only carries the plan out."""

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
            if seen is None:  # stored by a transaction that has since been rolled back: let the sender retry
                raise ServiceUnavailable("the message is being stored by another request; retry") from None
            sender = (message.identities or message.claims)[0]
            if seen.sender != (sender.kind, sender.value):
                # Someone else's message id: say "already stored", never where it went (SPEC §2.4).
                return IngestResult(None, None, None, duplicate=True)
            return IngestResult(seen.message_id, seen.ticket_id, ref(seen.number), duplicate=True)

    async def _ingest(self, conn: asyncpg.Connection, message: InboundMessage, external_id: str) -> IngestResult:
        now = self.clock()
        customer = await customers.resolve(conn, message.identities, message.claims, message.sender_name, now)
        if customer.merge_with:
            for other in customer.merge_with:
                await merge_customers(conn, self.config.sla, customer.id, other, now,
                                      reason="a message proved both identities")
            customer = await customers.resolve(conn, message.identities, message.claims, message.sender_name, now)
        found = classify(message.subject, message.text, self.config.topics, self.config.service.urgent_words,
                         customer.tier)
        automated = message.auto_kind is not None
        incoming = NewMessage(
            channel=message.channel, direction="in", external_id=external_id, body_text=message.text,
            created_at=message.received_at or now, customer_id=customer.id,
            sender_identity_id=customer.sender_identity_id, sender_name=message.sender_name,
            subject=message.subject, body_html=message.html, quoted_text=message.quoted_text,
            raw_ref=message.raw_ref, auto_kind=message.auto_kind, metadata=message.metadata,
            keywords=tuple(identity.value for identity in (*message.identities, *message.claims)
                           if identity.kind in SEARCHABLE_IDENTITIES))
        received = ("message.received", {"channel": message.channel, "auto": automated})
        suggested = [("customer.match_suggested", {
            "customer_id": s.customer_id, "identity": s.identity.key, "reason": s.reason,
            "confidence": s.confidence}) for s in customer.suggestions]

        if not (automated or customer.is_new or message.thread_refs or message.ticket_number_hint is not None):
            # The common follow-up, in one statement; None when the customer has no active ticket.
            joined = await tickets.join_active_ticket(conn, customer.id, found.priority, incoming,
                                                      [received, *suggested])
            if joined is not None:
                return await self._carry_out(conn, plan_ingest("join", automated=False), message, customer,
                                             joined, policy=None, now=now)

        choice = await tickets.choose_thread(
            conn, customer.id, thread_refs=message.thread_refs, number_hint=message.ticket_number_hint,
            now=now, reopen_window=self.config.service.reopen_window, new_customer=customer.is_new)
        if (choice.ticket is not None and choice.ticket.customer_id != customer.id and message.identities
                and await customers.prove_claim(conn, choice.ticket.customer_id, message.identities[0])):
            # The mailbox answered what we sent to an address someone only typed (the web form):
            # proof (SPEC §2.4). That claimant had no other way to hear from us, so they become this
            # customer, and the thread is chosen again over the merged tickets.
            await merge_customers(conn, self.config.sla, customer.id, choice.ticket.customer_id, now,
                                  reason=f"{message.identities[0].key} answered our message to that address")
            choice = await tickets.choose_thread(
                conn, customer.id, thread_refs=message.thread_refs, number_hint=message.ticket_number_hint,
                now=now, reopen_window=self.config.service.reopen_window)
        plan = plan_ingest(choice.action, automated=automated)
        policy = None
        happened: list[tickets.Event] = []
        if plan.new_ticket_status is not None:
            if plan.start_clocks:
                policy = self.config.sla.match(TicketFacts(priority=found.priority, tier=customer.tier,
                                                           channel=message.channel, topic=found.topic))
            ticket = await tickets.create(conn, NewTicket(
                customer_id=customer.id, channel=message.channel,
                subject=message.subject or _subject_from(message.text), status=plan.new_ticket_status,
                priority=found.priority, topic=found.topic, skill=found.skill, language=found.language,
                team=found.team or self.default_team, sla_policy=policy.name if policy else None,
                previous_ticket_id=choice.previous_ticket_id), now)
            happened.append(("ticket.created", {"ref": ticket.ref, "channel": message.channel}))
            # The first message carries the ticket's reference: search finds the ticket by it.
            incoming = dataclasses.replace(incoming, keywords=(*incoming.keywords, ticket.ref))
        else:
            assert choice.ticket is not None
            ticket = choice.ticket
        if plan.reopen:
            happened.append(("ticket.reopened", {"ref": ticket.ref}))
        happened.extend((received, *suggested))
        stored = await tickets.insert_message(conn, ticket, incoming, happened,
                                              customer_wrote=found.priority if plan.customer_wrote else None)
        return await self._carry_out(conn, plan, message, customer, stored, policy=policy, now=now)

    async def _carry_out(self, conn: asyncpg.Connection, plan: IngestPlan, message: InboundMessage,
                         customer: customers.Customer, stored: tickets.Stored, *, policy: SlaPolicy | None,
                         now: datetime) -> IngestResult:
        """The message row exists (else this is a redelivery: undo everything); now the plan's effects."""
        if stored.message_id is None:
            raise _Redelivery
        if message.attachments:
            await attachments.store(conn, self.config.settings.data_dir, stored.message_id, message.attachments)
        ticket, rules = stored.after, self.config.sla
        due = None
        if customer.suggestions:  # only a claim makes this extra statement
            await suggestions.record(conn, customer.id, customer.suggestions, ticket.id, now)
        if plan.route:
            await self._route(conn, ticket, reopened=plan.reopen, now=now)
        if plan.start_clocks:
            due = await clocks.start_ticket(conn, rules, ticket.id, policy, now)
        if plan.acknowledge:
            await acks.queue_ack(conn, self.config, message=message, ticket=ticket, customer_id=customer.id,
                                 customer_timezone=customer.timezone, due=due, now=now)
        if plan.customer_wrote:
            if plan.reopen:
                await clocks.reopen(conn, rules, ticket, now)
            await clocks.customer_wrote(conn, rules, ticket, was_pending=stored.before.status == "pending", now=now)
            if ticket.priority != stored.before.priority:
                changed = await clocks.recompute(conn, rules, ticket, customer.tier, now)
                if changed is not None:
                    await tickets.set_sla_policy(conn, ticket.id, changed.name)
        return IngestResult(stored.message_id, ticket.id, ticket.ref, duplicate=False,
                            new_ticket=plan.thread == "new", reopened=plan.reopen)

    async def _route(self, conn: asyncpg.Connection, ticket: Ticket, *, reopened: bool, now: datetime) -> None:
        """New work goes to the best agent; a reopened ticket back to its agent if they can take it."""
        if reopened:
            await assignment.route_reopened(conn, ticket, now)
        elif ticket.assignee_id is None:
            await assignment.route_ticket(conn, ticket, now)


def validate(message: InboundMessage) -> None:
    """Reject what no channel should hand over, before touching the database."""
    if not message.identities and not message.claims:
        raise InvalidInput("the sender has no identity (email, phone or platform id)")
    if not message.text.strip() and not message.attachments:
        raise InvalidInput("the message is empty")
    if len(message.text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"the message text is longer than {MAX_TEXT_CHARS} characters")
    fields = [message.text, message.subject, message.sender_name, message.external_id, message.html,
              message.quoted_text, *message.thread_refs, *(i.value for i in (*message.identities, *message.claims))]
    for value in fields:
        if value and not storable_text(value):
            raise InvalidInput("the message contains NUL characters or invalid Unicode")


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:80] + ("…" if len(first) > 80 else "")

