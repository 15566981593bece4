"""Messages we send to customers: recorded on the ticket's timeline and queued in the outbox together.

Email Message-IDs are derived from the outbox idempotency key, so the message row, the mail the
relay receives (even when re-sent after a crash) and the customer's `In-Reply-To` all agree.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import asyncpg

from router import events, outbox, tickets


def email_message_id(key: str, domain: str) -> str:
    """A stable Message-ID (without angle brackets) for the outbox item `key`."""
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}"


async def queue_outbound(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, ticket_id: int,
                         customer_id: int | None, to: str, subject: str | None, text: str, now: datetime,
                         mail_domain: str, author_agent_id: int | None = None,
                         extra: dict[str, Any] | None = None) -> int | None:
    """Record the outbound message and queue its delivery. Returns the message id, or None if an
    item with this key was already queued (a retried request)."""
    external_id = email_message_id(key, mail_domain) if channel == "email" else f"outbox:{key}"
    payload = {"to": to, "subject": subject, "text": text, "message_id": external_id, **(extra or {})}
    queued = await outbox.enqueue(conn, key=key, kind=kind, channel=channel, payload=payload, now=now,
                                  ticket_id=ticket_id, customer_id=customer_id)
    if queued is None:
        return None
    message_id = await tickets.insert_message(
        conn, ticket_id=ticket_id, customer_id=customer_id, channel=channel, direction="out",
        external_id=external_id, body_text=text, now=now, author_agent_id=author_agent_id, subject=subject,
        metadata={"kind": kind, "outbox_id": queued})
    await events.record(conn, ticket_id, "message.sent", {"message_id": message_id, "kind": kind}, now)
    return message_id
