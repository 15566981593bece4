"""Messages we send to customers: recorded on the ticket's timeline and queued in the outbox together.

Email Message-IDs are derived from the outbox idempotency key, so the message row, the mail the
relay receives (even when re-sent after a crash) and the customer's `In-Reply-To` all agree.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import asyncpg


def email_message_id(key: str, domain: str, secret: str) -> str:
    """A stable Message-ID (without angle brackets) for the outbox item `key`: an HMAC, so nobody
    can compute the id of our mail to a customer and slip a message into their thread."""
    digest = hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{digest}@{domain}"


async def queue_outbound(conn: asyncpg.Connection, *, key: str, kind: str, channel: str, ticket_id: int,
                         customer_id: int | None, to: str, subject: str | None, text: str, now: datetime,
                         mail_domain: str, secret: str, author_agent_id: int | None = None,
                         extra: dict[str, Any] | None = None, unless_sent_since: datetime | None = None) -> int | None:
    """Record the outbound message, queue its delivery and its event, in one statement. Returns
    the message id, or None when nothing was queued: an item with this key exists (a retried
    request), or `unless_sent_since` is given and the customer got an item of this kind since then
    (rate limit)."""
    external_id = email_message_id(key, mail_domain, secret) if channel == "email" else f"outbox:{key}"
    payload = {"to": to, "subject": subject, "text": text, "message_id": external_id, **(extra or {})}
    return await conn.fetchval(
        "WITH o AS (INSERT INTO outbox (idempotency_key, kind, channel, ticket_id, customer_id, payload, created_at,"
        "  next_attempt_at)"
        "  SELECT $1, $2, $3, $4, $5, $6, $7, $7 WHERE $11::timestamptz IS NULL OR NOT EXISTS ("
        "   SELECT 1 FROM outbox WHERE customer_id = $5 AND kind = $2 AND created_at > $11)"
        "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id),"
        " m AS (INSERT INTO messages (ticket_id, customer_id, channel, direction, external_id, author_agent_id,"
        "  subject, body_text, metadata, created_at)"
        "  SELECT $4, $5, $3, 'out', $8, $9, $10, $12, jsonb_build_object('kind', $2::text, 'outbox_id', o.id), $7"
        "  FROM o RETURNING id),"
        " e AS (INSERT INTO events (ticket_id, kind, payload, created_at)"
        "  SELECT $4, 'message.sent', jsonb_build_object('message_id', m.id, 'kind', $2::text), $7 FROM m)"
        " SELECT id FROM m",
        key, kind, channel, ticket_id, customer_id, payload, now, external_id, author_agent_id, subject,
        unless_sent_since, text)
