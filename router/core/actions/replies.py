"""Agent replies: pick the customer's channel and address, thread the email, stop the SLA clocks."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from router.core.acks import REPLY_CHANNEL
from router.config import Config
from router.core.errors import InvalidInput
from router.core.outbound import queue_outbound
from sla import clocks

MAX_REPLY_CHARS = 50_000


async def destination(conn: asyncpg.Connection, ticket: asyncpg.Record, channel: str | None) -> tuple[str, str]:
    """(channel, address) to reply on: the requested channel, else the customer's latest inbound one;
    the web form and integrations are answered by email."""
    if channel is None:
        channel = await conn.fetchval(
            "SELECT channel FROM messages WHERE ticket_id = $1 AND direction = 'in' AND auto_kind IS NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1", ticket["id"]) or ticket["channel"]
    channel = REPLY_CHANNEL.get(channel, channel)
    address = await conn.fetchval(
        "SELECT value FROM customer_identities WHERE customer_id = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
        ticket["customer_id"], channel)
    if address is None:
        raise InvalidInput(f"the customer cannot be reached on {channel!r}: no identity for that channel")
    return channel, address


async def send_reply(conn: asyncpg.Connection, config: Config, ticket: asyncpg.Record, *, text: str,
                     channel: str | None, agent_id: int | None, now: datetime,
                     idempotency_key: str | None = None) -> int | None:
    if len(text) > MAX_REPLY_CHARS:
        raise InvalidInput(f"the reply is longer than {MAX_REPLY_CHARS} characters")
    channel, address = await destination(conn, ticket, channel)
    extra: dict[str, object] = {"ticket_ref": f"T-{ticket['number']}", "language": ticket["language"]}
    if channel == "email":
        thread = await conn.fetch(
            "SELECT external_id, direction FROM messages WHERE ticket_id = $1 AND channel = 'email'"
            " AND external_id NOT LIKE 'sha256:%' ORDER BY created_at, id", ticket["id"])
        customer_ids = [m["external_id"] for m in thread if m["direction"] == "in"]
        references = [m["external_id"] for m in thread]
        # Answer the customer's latest mail; References carry the whole conversation for their client.
        extra.update(in_reply_to=(customer_ids or references or [None])[-1], references=references[-20:])
    subject = f"Re: [T-{ticket['number']}] {ticket['subject'] or ''}".strip()
    key = f"reply:{ticket['id']}:{idempotency_key or uuid.uuid4().hex}"
    message_id = await queue_outbound(
        conn, key=key, kind="reply", channel=channel, ticket_id=ticket["id"], customer_id=ticket["customer_id"],
        to=address, subject=subject, text=text, now=now, author_agent_id=agent_id, extra=extra,
        mail_domain=config.service.support_address.partition("@")[2],
        secret=config.settings.secret_key)
    if message_id is None:
        return None
    await conn.execute(
        "UPDATE tickets SET last_agent_reply_at = $2, updated_at = $2,"
        " first_responded_at = COALESCE(first_responded_at, $2) WHERE id = $1", ticket["id"], now)
    await clocks.agent_replied(conn, ticket["id"], now)
    return message_id
