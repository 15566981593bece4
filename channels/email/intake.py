"""SMTP intake (aiosmtpd): a thin handler that answers 250 only after the pipeline committed.

- RCPT: only our configured mail domains (550 otherwise, so we are never an open relay).
- DATA: size limit (552, enforced by aiosmtpd), raw RFC 822 bytes kept, parsed, ingested.
- Database unavailable: 451, so the sending server retries; nothing is half-stored because the
  ingest is one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.email.parse import ParsedEmail, fingerprint, parse_email
from router.config import Config
from router.core.errors import DATABASE_DOWN_ERRORS, RouterError, StorageFailed
from router.core.inbound import (
    MAX_TEXT_CHARS,
    Identity,
    InboundAttachment,
    InboundMessage,
    IngestResult,
    email_identity,
    storable,
)
from router.core.refs import find_ref

log = logging.getLogger(__name__)

Ingest = Callable[[InboundMessage], Awaitable[IngestResult]]
StoreRaw = Callable[[bytes], Awaitable[str]]
PARSE_IN_THREAD_BYTES = 256 * 1024
_PLUS_REF = re.compile(r"\+(T-\d{1,12})@", re.IGNORECASE)


def ticket_hint(parsed: ParsedEmail, recipients: list[str]) -> int | None:
    """`[T-1042]` in the subject, or plus-addressing `support+T-1042@domain`."""
    for recipient in recipients:
        match = _PLUS_REF.search(recipient)
        if match:
            return int(match.group(1)[2:])
    return find_ref(parsed.subject)


def to_inbound(parsed: ParsedEmail, raw: bytes, raw_ref: str, envelope_from: str | None,
               recipients: list[str]) -> InboundMessage:
    """The parsed mail as the pipeline's message. Every string is made storable: broken mail is
    kept (with replacement characters) rather than refused."""
    def clean(value: str | None) -> str | None:
        return storable(value) if value else value

    sender = (email_identity(clean(parsed.from_address) or "") or email_identity(clean(envelope_from) or "")
              or Identity("email", "mailer-daemon@unknown.invalid"))
    refs = (*parsed.in_reply_to, *reversed(parsed.references))
    text = clean(parsed.new_text or parsed.text) or "(no text)"
    if len(text) > MAX_TEXT_CHARS:  # e.g. a pasted log: keep the start; the raw mail keeps all of it
        text = text[:MAX_TEXT_CHARS - 100] + "\n\n[… truncated: the full text is in the original message]"
    # A null envelope sender (MAIL FROM:<>) is a bounce or DSN whatever its headers say (RFC 5321 §4.5.5).
    auto_kind = parsed.auto_kind or ("bounce" if not envelope_from or envelope_from == "<>" else None)
    return InboundMessage(
        channel="email",
        identities=(sender,),
        text=text,
        external_id=clean(parsed.message_id) or f"sha256:{fingerprint(raw)}",
        sender_name=clean(parsed.from_name),
        subject=clean(parsed.subject),
        html=clean(parsed.html),
        quoted_text=clean(parsed.quoted_text),
        auto_kind=auto_kind,
        thread_refs=tuple(dict.fromkeys(storable(r) for r in refs)),
        ticket_number_hint=ticket_hint(parsed, recipients),
        raw_ref=raw_ref,
        attachments=tuple(InboundAttachment(storable(a.filename), storable(a.content_type), a.content,
                                            clean(a.content_id), a.inline) for a in parsed.attachments),
        metadata={"full_text": storable(parsed.text)[:MAX_TEXT_CHARS]} if parsed.new_text != parsed.text else {},
    )


class IntakeHandler:
    """aiosmtpd handler; the work happens in the pipeline (ARCHITECTURE: keep the handler thin)."""

    def __init__(self, config: Config, ingest: Ingest, store_raw: StoreRaw):
        self.ingest = ingest
        self.store_raw = store_raw
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """A new configuration (SIGHUP): accepted domains and size limits follow it."""
        self.config = config
        self.domains = {d.lower() for d in config.service.mail_domains}

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(">")
        if domain not in self.domains:
            return "550 5.7.1 Relaying denied: this server only accepts mail for its support addresses"
        if len(envelope.rcpt_tos) >= 50:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            raw_ref = await self.store_raw(raw)
            limits = {"max_attachments": self.config.service.max_attachments,
                      "max_attachment_bytes": self.config.service.max_attachment_bytes}
            if len(raw) > PARSE_IN_THREAD_BYTES:  # big mail parses for up to a second: not on the event loop
                parsed = await asyncio.to_thread(parse_email, raw, **limits)
            else:
                parsed = parse_email(raw, **limits)
            message = to_inbound(parsed, raw, raw_ref, envelope.mail_from, list(envelope.rcpt_tos))
            result = await self.ingest(message)
        except StorageFailed:
            return "451 4.3.0 Requested action aborted: local error in processing"
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("SMTP intake: database unavailable (%r); answering 451", exc)
            return "451 4.3.0 Temporary local problem: please try again later"
        except RouterError as exc:
            if exc.status >= 500:
                return "451 4.3.0 Temporary local problem: please try again later"
            return f"554 5.6.0 Message refused: {exc.detail}"
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SMTP intake: unexpected error; answering 451 so the sender retries")
            return "451 4.3.0 Temporary local problem: please try again later"
        state = "duplicate of" if result.duplicate else "queued as"
        return f"250 2.0.0 OK {state} {result.ticket_ref}"


_SIMPLE_PATH = re.compile(r"^<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(.*)$", re.DOTALL)


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with a fast path for the address syntax nearly every server sends
    (`MAIL FROM:<user@example.com> SIZE=…`): aiosmtpd parses each address with the stdlib's full
    RFC 5322 header parser, a tenth of our per-message CPU. Anything else takes that parser."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg)
        if match and ".." not in match.group(1) and not match.group(1).startswith("."):
            return match.group(1), match.group(2).lstrip()
        return super()._getaddr(arg)


async def start_server(handler: IntakeHandler, host: str, port: int, *, hostname: str) -> asyncio.Server:
    """Serve SMTP on the running event loop (not aiosmtpd's thread Controller), so the handler
    shares the app's database pool and loop. Each connection takes the size limit the handler's
    current config sets."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: IntakeSMTP(handler, data_size_limit=handler.config.service.max_message_bytes,
                           enable_SMTPUTF8=True, hostname=hostname, ident="support-router ESMTP"),
        host=host, port=port)
