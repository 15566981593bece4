"""Outbound email through `ROUTER_SMTP_RELAY` (aiosmtplib), with threading and loop-safety headers."""

from __future__ import annotations

import email.utils
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import urlparse

import aiosmtplib

from router.config import Config
from router.core.delivery import OutboxItem, PermanentDeliveryError

SUPPORT_NAMES = {"ja": "サポート窓口", "en": "Support"}


def _angle(message_id: str) -> str:
    return f"<{message_id.strip('<>')}>"


def build_message(config: Config, item: OutboxItem) -> EmailMessage:
    """The MIME message for an outbox item. UTF-8 body; headers RFC 2047-encoded by the SMTP policy,
    which every Japanese mail client reads."""
    payload = item.payload
    language = payload.get("language") or "en"
    local, _, domain = config.service.support_address.partition("@")
    msg = EmailMessage()
    msg["From"] = Address(SUPPORT_NAMES.get(language, "Support"), local, domain)
    msg["To"] = payload["to"]
    msg["Subject"] = payload.get("subject") or f"[{payload.get('ticket_ref', '')}]"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = _angle(payload["message_id"])
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = _angle(payload["in_reply_to"])
    references = [r for r in payload.get("references") or [] if r]
    if payload.get("in_reply_to") and payload["in_reply_to"] not in references:
        references.append(payload["in_reply_to"])
    if references:
        msg["References"] = " ".join(_angle(r) for r in references[-20:])
    if payload.get("auto_submitted"):
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    if payload.get("ticket_ref"):
        msg["X-Ticket-Ref"] = payload["ticket_ref"]
    msg.set_content(payload["text"], charset="utf-8")
    return msg


class EmailSender:
    """Delivers email items to the relay; 5xx answers are permanent, everything else is retried."""

    def __init__(self, config: Config):
        relay = urlparse(config.settings.smtp_relay or "")
        self.config = config
        self.hostname = relay.hostname or "127.0.0.1"
        self.port = relay.port or 25
        self.username = relay.username
        self.password = relay.password
        self.use_tls = relay.scheme == "smtps"

    async def send(self, item: OutboxItem) -> None:
        message = build_message(self.config, item)
        try:
            await aiosmtplib.send(message, hostname=self.hostname, port=self.port, username=self.username,
                                  password=self.password, use_tls=self.use_tls, timeout=30,
                                  sender=self.config.service.support_address)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentDeliveryError(f"relay refused: {exc.code} {exc.message}") from exc
            raise
