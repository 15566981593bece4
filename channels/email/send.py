"""Outbound email through `ROUTER_SMTP_RELAY` (aiosmtplib), with threading and loop-safety headers.

Header values come partly from customers (the subject, the addresses and Message-IDs they sent).
Python's email serializer before 3.11.10 writes a CR/LF that an encoded word decodes to as a real
line break (CVE-2024-6923): a subject could add headers of its own. So every value is made one
line (controls become spaces, and `=?` cannot start an encoded word), and the built message is
parsed back: when its header names are not exactly the ones we set, it is refused as unbuildable —
a permanent failure the agent sees on the ticket, never a retry.
"""

from __future__ import annotations

import email.utils
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from urllib.parse import urlparse

import aiosmtplib

from router.config import Config
from router.core.delivery import OutboxItem, PermanentDeliveryError
from router.core.inbound import single_line

SUPPORT_NAMES = {"ja": "サポート窓口", "en": "Support"}
_POLICY = (policy.SMTP.clone(verify_generated_headers=True)  # Python 3.11.10+, 3.12.5+
           if hasattr(policy.SMTP, "verify_generated_headers") else policy.SMTP)


class UnbuildableMessage(PermanentDeliveryError):
    """The item cannot become a safe mail (a header would not stay one line): retrying cannot help."""


def one_line(value: str) -> str:
    """`value` as text that stays one header line however a reader decodes it."""
    return (single_line(value) or "").replace("=?", "= ?")


def _angle(message_id: str) -> str:
    """`<id>` with no blanks and no `=?` (which a reader would decode as an encoded word)."""
    return "<" + "".join((single_line(message_id) or "").split()).strip("<>").replace("=?", "=%3F") + ">"


def build_message(config: Config, item: OutboxItem) -> EmailMessage:
    """The MIME message for an outbox item. UTF-8 body; headers RFC 2047-encoded by the SMTP policy,
    which every Japanese mail client reads."""
    payload = item.payload
    language = payload.get("language") or "en"
    local, _, domain = config.service.support_address.partition("@")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(SUPPORT_NAMES.get(language, "Support"), local, domain)
    msg["To"] = one_line(payload["to"])
    msg["Subject"] = one_line(payload.get("subject") or f"[{payload.get('ticket_ref', '')}]")
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
        msg["X-Ticket-Ref"] = one_line(payload["ticket_ref"])
    msg.set_content(payload["text"], charset="utf-8")
    if payload.get("html"):  # built by us (the survey's buttons), never from what a customer sent
        msg.add_alternative(payload["html"], subtype="html", charset="utf-8")
    _check_headers(msg)
    return msg


def _check_headers(msg: EmailMessage) -> None:
    """Parse the serialized headers back: exactly the headers we set, each once, or refuse."""
    wanted = sorted(name.lower() for name in msg.keys())
    try:
        written = msg.as_bytes()
    except (ValueError, TypeError) as exc:  # verify_generated_headers, or a value the policy cannot fold
        raise UnbuildableMessage(f"cannot build the mail: {exc}") from exc
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(written)
    found = sorted(name.lower() for name in parsed.keys())
    if found != wanted:
        extra = sorted(set(found) - set(wanted)) or found
        raise UnbuildableMessage(f"cannot build the mail: its headers would include {', '.join(extra)}")


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
        try:
            message = build_message(self.config, item)
        except UnbuildableMessage:
            raise
        except (ValueError, TypeError, KeyError, UnicodeError) as exc:  # e.g. an address the policy refuses
            raise UnbuildableMessage(f"cannot build the mail: {exc!r}") from exc
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
