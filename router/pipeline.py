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
from router import acks, attachments, customers, events, tickets
from router.classify import classify, higher_priority
from router.clock import Clock, system_clock
from router.config import Config
from router.errors import InvalidInput
from router.inbound import InboundMessage
from sla import clocks

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 200_000


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

    async def ingest(self, pool: asyncpg.Pool, message: InboundMessage) -> IngestResult:
        validate(message)
        for attempt in (1, 2):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    return await self._ingest(conn, message)
            except asyncpg.UniqueViolationError:
                # A concurrent delivery of the same platform message committed first; run again
                # and find it as a duplicate.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _ingest(self, conn: asyncpg.Connection, message: InboundMessage) -> IngestResult:
        now = self.clock()
        external_id = message.external_id or f"gen:{uuid.uuid4().hex}"
        if message.external_id is not None:
            seen = await tickets.find_message(conn, message.channel, external_id)
            if seen is not None:
                return IngestResult(seen["id"], seen["ticket_id"], tickets.ref(seen["number"]), duplicate=True)

        customer = await customers.resolve(conn, message.identities, message.sender_name, now)
        choice = await tickets.choose_thread(
            conn, customer.id, thread_refs=message.thread_refs, number_hint=message.ticket_number_hint,
            now=now, reopen_window=self.config.service.reopen_window)
        found = classify(message.subject, message.text, self.config.topics, self.config.service.urgent_words,
                         customer.tier)
        automated = message.auto_kind is not None

        if choice.action == "new":
            ticket = await tickets.create(
                conn, customer_id=customer.id, channel=message.channel,
                subject=message.subject or _subject_from(message.text),
                status="closed" if automated else "open", priority=found.priority, topic=found.topic,
                skill=found.skill, language=found.language, team_id=await self._team_id(conn, found.team),
                previous_ticket_id=choice.previous_ticket_id, now=now)
            await events.record(conn, ticket["id"], "ticket.created",
                                {"ref": tickets.ref(ticket["number"]), "channel": message.channel}, now)
        elif automated:
            # Auto-replies and bounces are kept on the thread but never count as the customer writing.
            ticket = choice.ticket
        else:
            ticket = await tickets.record_customer_message(
                conn, choice.ticket["id"], reopen=choice.action == "reopen",
                priority=higher_priority(choice.ticket["priority"], found.priority), now=now)
            if choice.action == "reopen":
                await events.record(conn, ticket["id"], "ticket.reopened", {"ref": tickets.ref(ticket["number"])},
                                    now)

        message_id = await tickets.insert_message(
            conn, ticket_id=ticket["id"], customer_id=customer.id, channel=message.channel, direction="in",
            external_id=external_id, body_text=message.text, now=message.received_at or now,
            sender_identity_id=customer.sender_identity_id, sender_name=message.sender_name,
            subject=message.subject, body_html=message.html, quoted_text=message.quoted_text,
            raw_ref=message.raw_ref, auto_kind=message.auto_kind, metadata=message.metadata)
        await attachments.store(conn, self.config.settings.data_dir, message_id, message.attachments)
        if not automated:
            await self._route(conn, ticket, reopened=choice.action == "reopen", now=now)
            if choice.action == "new":
                due = await clocks.start_ticket(conn, self.config, ticket, customer.tier, now)
                await acks.queue_ack(conn, self.config, message=message, ticket=ticket, customer_id=customer.id,
                                     customer_timezone=customer.timezone, due=due, now=now)
            else:
                await clocks.customer_wrote(conn, self.config, ticket, now)
                if ticket["priority"] != choice.ticket["priority"]:
                    await clocks.recompute(conn, self.config, ticket, customer.tier, now)
        await events.record(conn, ticket["id"], "message.received",
                            {"message_id": message_id, "channel": message.channel, "auto": automated}, now)
        return IngestResult(message_id, ticket["id"], tickets.ref(ticket["number"]), duplicate=False,
                            new_ticket=choice.action == "new", reopened=choice.action == "reopen")

    async def _route(self, conn: asyncpg.Connection, ticket: asyncpg.Record, *, reopened: bool,
                     now: datetime) -> None:
        """New or unassigned work goes to the best agent; a reopened ticket goes back to its agent."""
        if ticket["assignee_id"] is None:
            await assignment.route_ticket(conn, ticket, now)
        elif reopened:
            await agent_store.take_slot(conn, ticket["assignee_id"], now, force=True)
            await agent_store.log_routing(conn, ticket["id"], "reopened", "customer wrote again: back to their agent",
                                          now, agent_id=ticket["assignee_id"])

    async def _team_id(self, conn: asyncpg.Connection, team: str | None) -> int | None:
        """The topic's team, else the first configured team (the default queue)."""
        name = team or (self.config.teams[0].name if self.config.teams else None)
        if name is None:
            return None
        return await conn.fetchval("SELECT id FROM teams WHERE name = $1", name)


def validate(message: InboundMessage) -> None:
    """Reject what no channel should hand over, before touching the database."""
    if not message.identities:
        raise InvalidInput("the sender has no identity (email, phone or platform id)")
    if not message.text.strip() and not message.attachments:
        raise InvalidInput("the message is empty")
    if len(message.text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"the message text is longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in message.text or "\x00" in (message.subject or ""):
        raise InvalidInput("the message contains NUL characters")


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:80] + ("…" if len(first) > 80 else "")

