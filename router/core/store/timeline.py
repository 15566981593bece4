"""Read models of the ticket page: the cross-channel timeline, the ticket's header, and where a
reply can go. Reads only; the tables are written by their own stores.

The timeline merges three sources in time order: messages (inbound, outbound with their delivery
state, notes), routing decisions (`routing_log`, with reasons) and the ticket events agents need to
see (`events`: SLA warnings and breaches, status and priority changes, reopen, merges). Message
bodies of email HTML are not read here: the page shows them from their own sandboxed endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from router.config import Settings
from router.core import channel_rules
from router.core.acks import REPLY_CHANNEL
from router.core.channel_rules import Unavailable
from router.core.refs import ref
from router.core.store import customers
from router.core.store.tickets import Ticket

SYSTEM_EVENT_KINDS = ("sla.warning", "sla.breach", "ticket.updated", "ticket.reopened", "ticket.merged",
                      "customer.merged", "customer.split", "customer.identity_verified")
"""Event kinds shown on the timeline. Routing events (`ticket.assigned`, `ticket.queued`, …) come from
`routing_log` instead, which holds their reasons; message and delivery events are the messages."""

CHANNEL_SETTING = {"telegram": "telegram_bot_token", "line": "line_channel_token", "whatsapp": "meta_access_token",
                   "messenger": "meta_access_token", "instagram": "meta_access_token"}
"""The setting a channel needs before anything can be sent on it."""

NOT_REPLY_CHANNELS = frozenset({"phone", *REPLY_CHANNEL})
"""Identity kinds that are no channel of their own: a phone number (no SMS sender), and the web form and
integrations, which are answered by email."""


@dataclass(frozen=True)
class Attachment:
    id: int
    filename: str
    content_type: str
    size: int
    inline: bool


@dataclass(frozen=True)
class Receipt:
    """The platform's latest word on a sent message (`delivery_receipts`): delivered, read, or failed
    (with the platform's error)."""

    status: str
    error: str | None
    at: datetime


@dataclass(frozen=True)
class Delivery:
    """An outbound message's outbox row: `pending`, `sending`, `sent` or `dead` (with the reason), and
    what the platform reported after accepting it, if anything."""

    status: str
    attempts: int
    error: str | None
    sent_at: datetime | None
    to: str | None
    receipt: Receipt | None = None


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    direction: Literal["in", "out", "note", "system"]
    sender_name: str | None
    sender_address: str | None  # the identity it came from (inbound)
    sender_verified: bool | None
    author_name: str | None  # the agent who wrote it (replies, notes)
    subject: str | None
    text: str
    quoted_text: str | None
    has_html: bool
    auto_kind: str | None  # inbound: autoreply, bounce, …
    kind: str | None  # outbound: reply, ack, csat …
    created_at: datetime
    delivery: Delivery | None
    attachments: tuple[Attachment, ...] = ()
    entry: Literal["message"] = "message"


@dataclass(frozen=True)
class SystemEntry:
    """A routing decision (`source` "routing", `kind` its action) or a ticket event (`source` "event")."""

    id: int
    source: Literal["routing", "event"]
    kind: str
    created_at: datetime
    reason: str | None = None
    agent_name: str | None = None
    actor_name: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    entry: Literal["system"] = "system"


@dataclass(frozen=True)
class Header:
    """The ticket with the names the page shows next to it."""

    ticket: Ticket
    customer_name: str | None
    team: str | None
    assignee_name: str | None
    previous_ref_number: int | None


_HEADER_SQL = (
    "SELECT t.*, c.name AS customer_name, tm.name AS team, a.name AS assignee_name, p.number AS previous_number"
    "{facts} FROM tickets t JOIN customers c ON c.id = t.customer_id"
    " LEFT JOIN teams tm ON tm.id = t.team_id LEFT JOIN agents a ON a.id = t.assignee_id"
    " LEFT JOIN tickets p ON p.id = t.previous_ticket_id WHERE t.number = $1"
)


def _header(row: asyncpg.Record) -> Header:
    return Header(Ticket.from_row(row), row["customer_name"], row["team"], row["assignee_name"],
                  row["previous_number"])


async def header(conn: asyncpg.Connection, number: int) -> Header | None:
    row = await conn.fetchrow(_HEADER_SQL.format(facts=""), number)
    return _header(row) if row else None


_FACTS = (
    ", c.tier, c.language AS customer_language, c.timezone AS customer_timezone, c.created_at AS customer_since,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_object('kind', i.kind, 'value', i.value, 'verified', i.verified)"
    "   ORDER BY i.id), '[]') FROM customer_identities i WHERE i.customer_id = t.customer_id) AS identities,"
    " (SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.created_at DESC), '[]') FROM (SELECT number, status,"
    "   priority, channel, subject, created_at FROM tickets WHERE customer_id = t.customer_id"
    "   ORDER BY created_at DESC LIMIT 50) h) AS history,"
    " (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY array_position(ARRAY['first_response', 'next_response',"
    "   'resolution'], s.target)), '[]') FROM (SELECT target, cycle, policy, started_at, warn_at, due_at, paused_at,"
    "   met_at, warned_at, breached_at FROM sla_targets WHERE ticket_id = t.id) s) AS clocks,"
    " (SELECT jsonb_object_agg(l.channel, l.last_at) FROM (SELECT m.channel, max(m.created_at) AS last_at"
    "   FROM tickets o JOIN messages m ON m.ticket_id = o.id WHERE o.customer_id = t.customer_id"
    "   AND m.direction = 'in' AND m.auto_kind IS NULL GROUP BY m.channel) l) AS last_inbound,"
    # `tickets.reply_destination`'s rule: the channel of the customer's latest real message on the ticket
    " (SELECT m.channel FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in' AND m.auto_kind IS NULL"
    "   ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS latest_channel,"
    " (SELECT r.read_at FROM ticket_reads r WHERE r.agent_id = $2 AND r.ticket_id = t.id) AS read_at"
)


@dataclass(frozen=True)
class PageFacts:
    """What the ticket page shows beside the timeline, read in one round trip (the page is the agents'
    most frequent read): the header, the customer (the shape of `customers.profile`), the SLA clocks
    (the shape of `sla.clocks.clocks_json`), when the customer last wrote on each channel, and up to when
    the agent has read the ticket (`store.reads`)."""

    header: Header
    customer: dict[str, Any]
    clocks: list[dict[str, Any]]
    last_inbound: dict[str, datetime]
    latest_channel: str
    read_at: datetime | None

    @property
    def unread(self) -> bool:
        """`store.reads`' rule: the customer wrote since the agent last opened the ticket."""
        wrote = self.header.ticket.last_customer_message_at
        return self.read_at is None or (wrote is not None and wrote > self.read_at)


async def page_facts(conn: asyncpg.Connection, number: int, agent_id: int) -> PageFacts | None:
    row = await conn.fetchrow(_HEADER_SQL.format(facts=_FACTS), number, agent_id)
    if row is None:
        return None
    found = _header(row)
    customer = {
        "id": found.ticket.customer_id, "name": row["customer_name"], "tier": row["tier"],
        "language": row["customer_language"], "timezone": row["customer_timezone"],
        "created_at": row["customer_since"].isoformat(), "identities": row["identities"],
        "tickets": [{"ref": ref(h["number"]), "status": h["status"], "priority": h["priority"],
                     "channel": h["channel"], "subject": h["subject"], "created_at": h["created_at"]}
                    for h in row["history"]],
    }
    last_inbound = {channel: datetime.fromisoformat(at) for channel, at in (row["last_inbound"] or {}).items()}
    return PageFacts(found, customer, row["clocks"], last_inbound, row["latest_channel"] or found.ticket.channel,
                     row["read_at"])


TimelineEntry = Message | SystemEntry

_MESSAGES_SQL = (
    "SELECT m.id, m.channel, m.direction, m.sender_name, m.subject, m.body_text, m.quoted_text,"
    " m.body_html IS NOT NULL AS has_html, m.auto_kind, m.metadata->>'kind' AS kind, m.created_at,"
    " ci.value AS sender_address, ci.verified AS sender_verified, a.name AS author_name,"
    " o.status AS delivery_status, o.attempts, o.last_error, o.sent_at, o.payload->>'to' AS delivered_to,"
    " rc.status AS receipt_status, rc.error AS receipt_error, rc.occurred_at AS receipt_at,"
    " (SELECT jsonb_agg(jsonb_build_object('id', f.id, 'filename', f.filename, 'content_type', f.content_type,"
    "   'size', f.size, 'inline', f.inline) ORDER BY f.id) FROM attachments f WHERE f.message_id = m.id)"
    "  AS attachments"
    " FROM messages m LEFT JOIN customer_identities ci ON ci.id = m.sender_identity_id"
    " LEFT JOIN agents a ON a.id = m.author_agent_id"
    " LEFT JOIN outbox o ON o.id = (m.metadata->>'outbox_id')::bigint"
    # the latest receipt; at the same instant the worse news (a failure) wins over a read or delivered
    " LEFT JOIN LATERAL (SELECT r.status, r.error, r.occurred_at FROM delivery_receipts r"
    "  WHERE r.message_id = m.id AND m.direction = 'out'"
    "  ORDER BY r.occurred_at DESC, array_position(ARRAY['failed', 'read', 'delivered'], r.status) LIMIT 1) rc ON true"
    " WHERE m.ticket_id = $1 ORDER BY m.created_at, m.id"
)

_SYSTEM_SQL = (
    "SELECT 'routing' AS source, r.id, r.action AS kind, r.created_at, r.reason, a.name AS agent_name,"
    " b.name AS actor_name, NULL::jsonb AS payload FROM routing_log r"
    " LEFT JOIN agents a ON a.id = r.agent_id LEFT JOIN agents b ON b.id = r.actor_id WHERE r.ticket_id = $1"
    " UNION ALL"
    " SELECT 'event', e.id, e.kind, e.created_at, NULL, NULL, b.name, e.payload FROM events e"
    " LEFT JOIN agents b ON jsonb_typeof(coalesce(e.payload->'actor', e.payload->'actor_id')) = 'number'"
    "  AND b.id = coalesce(e.payload->>'actor', e.payload->>'actor_id')::bigint"
    " WHERE e.ticket_id = $1 AND e.kind = ANY($2::text[])"
)


def _message(row: asyncpg.Record) -> Message:
    delivery = None
    if row["delivery_status"] is not None:
        receipt = Receipt(row["receipt_status"], row["receipt_error"], row["receipt_at"]) \
            if row["receipt_status"] is not None else None
        delivery = Delivery(row["delivery_status"], row["attempts"], row["last_error"], row["sent_at"],
                            row["delivered_to"], receipt)
    return Message(
        id=row["id"], channel=row["channel"], direction=row["direction"], sender_name=row["sender_name"],
        sender_address=row["sender_address"], sender_verified=row["sender_verified"],
        author_name=row["author_name"], subject=row["subject"],
        text=row["body_text"], quoted_text=row["quoted_text"] or None, has_html=row["has_html"],
        auto_kind=row["auto_kind"], kind=row["kind"], created_at=row["created_at"], delivery=delivery,
        attachments=tuple(Attachment(**a) for a in row["attachments"] or ()))


async def messages(conn: asyncpg.Connection, ticket_id: int) -> list[Message]:
    return [_message(row) for row in await conn.fetch(_MESSAGES_SQL, ticket_id)]


async def system_entries(conn: asyncpg.Connection, ticket_id: int) -> list[SystemEntry]:
    """Routing decisions and the events of `SYSTEM_EVENT_KINDS`, in time order."""
    rows = await conn.fetch(_SYSTEM_SQL, ticket_id, list(SYSTEM_EVENT_KINDS))
    entries = [SystemEntry(id=row["id"], source=row["source"], kind=row["kind"], created_at=row["created_at"],
                           reason=row["reason"], agent_name=row["agent_name"], actor_name=row["actor_name"],
                           payload=row["payload"] or {}) for row in rows]
    return sorted(entries, key=lambda e: (e.created_at, e.source != "routing", e.id))


def merge(messages: Sequence[Message], system: Sequence[SystemEntry]) -> list[TimelineEntry]:
    """One list in time order; at the same instant a message comes before what it caused (its routing)."""
    keyed: list[tuple[tuple[datetime, int, int], TimelineEntry]] = [
        ((m.created_at, 0, index), m) for index, m in enumerate(messages)]
    keyed += [((s.created_at, 1, index), s) for index, s in enumerate(system)]
    return [entry for _, entry in sorted(keyed, key=lambda pair: pair[0])]


async def timeline(conn: asyncpg.Connection, ticket_id: int) -> list[TimelineEntry]:
    return merge(await messages(conn, ticket_id), await system_entries(conn, ticket_id))


@dataclass(frozen=True)
class StoredFile:
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None


async def message_html(conn: asyncpg.Connection, number: int, message_id: int) -> str | None:
    """The stored (sanitized at intake) HTML of a message of ticket `number`, or None."""
    html: str | None = await conn.fetchval(
        "SELECT m.body_html FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE m.id = $1 AND t.number = $2", message_id, number)
    return html


async def inline_parts(conn: asyncpg.Connection, message_id: int, max_bytes: int) -> list[StoredFile]:
    """The message's attachments its HTML can show in place (`cid:`), up to `max_bytes` each."""
    rows = await conn.fetch(
        "SELECT filename, content_type, size, sha256, content_id FROM attachments"
        " WHERE message_id = $1 AND content_id IS NOT NULL AND size <= $2 ORDER BY id", message_id, max_bytes)
    return [StoredFile(**dict(row)) for row in rows]


async def attachment(conn: asyncpg.Connection, number: int, attachment_id: int) -> StoredFile | None:
    """An attachment of a message on ticket `number`, or None."""
    row = await conn.fetchrow(
        "SELECT f.filename, f.content_type, f.size, f.sha256, f.content_id FROM attachments f"
        " JOIN messages m ON m.id = f.message_id JOIN tickets t ON t.id = m.ticket_id"
        " WHERE f.id = $1 AND t.number = $2", attachment_id, number)
    return StoredFile(**dict(row)) if row else None


# --- where a reply can go ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyOption:
    """A channel the customer can be answered on. `refusal` says why it cannot be used now (a code the
    page words: "window_closed", "never_wrote", "not_configured"), with `refusal_detail` (the hours
    since the customer's last message, or the missing setting). `template`: usable, but outside
    WhatsApp's window the reply goes as the configured reply template."""

    channel: str
    address: str
    verified: bool
    refusal: str | None = None
    refusal_detail: str | None = None
    template: bool = False

    @property
    def usable(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class ReplyChoices:
    """The customer's latest channel (where a reply goes by default) and every channel on offer."""

    latest: str
    options: tuple[ReplyOption, ...]

    def option(self, channel: str) -> ReplyOption | None:
        return next((o for o in self.options if o.channel == channel), None)


def _option(channel: str, address: str, verified: bool, last_inbound_at: datetime | None, settings: Settings,
            now: datetime, whatsapp_template: bool) -> ReplyOption:
    setting = CHANNEL_SETTING.get(channel)
    if setting is not None and not getattr(settings, setting):
        return ReplyOption(channel, address, verified, "not_configured", setting.upper())
    ruling = channel_rules.availability(channel, last_inbound_at, now, whatsapp_template=whatsapp_template)
    if isinstance(ruling, Unavailable):
        hours = "" if ruling.last_customer_message_at is None else \
            str(int((now - ruling.last_customer_message_at).total_seconds() // 3600))
        return ReplyOption(channel, address, verified, ruling.rule, hours)
    return ReplyOption(channel, address, verified, template=ruling.template)


async def reply_addresses(conn: asyncpg.Connection, customer_id: int,
                          identities: Sequence[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """For each channel among the customer's identities (`(kind, value, verified)`, oldest first), the
    address a reply there would use, by `customers.address_on` itself (the rule the reply action
    applies: never a claim another customer brought in by a merge still in force)."""
    verified = {(kind, value) for kind, value, ok in identities if ok}
    kinds = list(dict.fromkeys(kind for kind, _, _ in identities if kind not in NOT_REPLY_CHANNELS))
    found = await customers.addresses_on(conn, customer_id, kinds) if kinds else {}
    return [(kind, found[kind], (kind, found[kind]) in verified) for kind in kinds if kind in found]


def reply_choices(addresses: Sequence[tuple[str, str, bool]], last_inbound: Mapping[str, datetime],
                  latest: str, settings: Settings, now: datetime, *, whatsapp_template: bool = False) -> ReplyChoices:
    """Pure: one option per channel of `addresses` (`(kind, address, verified)` as `reply_addresses`
    reads them; a later address of a kind replaces an earlier one), with why it cannot be used now, if
    so. `whatsapp_template`: a WhatsApp reply template is configured (`replies.destination`'s rule)."""
    chosen = {kind: (value, verified) for kind, value, verified in addresses if kind not in NOT_REPLY_CHANNELS}
    options = tuple(_option(channel, address, verified, last_inbound.get(channel), settings, now, whatsapp_template)
                    for channel, (address, verified) in chosen.items())
    return ReplyChoices(REPLY_CHANNEL.get(latest, latest), options)


async def transfer_targets(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Active agents a ticket can be handed to, by name, with their status and load."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, name, role, status, load, capacity FROM agents WHERE active ORDER BY lower(name), id")
    return rows
