"""SMTP intake (aiosmtpd): a thin handler that answers 250 only after the pipeline committed.

- Connections: at most `[service] smtp_max_connections_per_ip` per client address and
  `smtp_max_connections` in all (421 beyond); a session that waits on its client for
  `smtp_idle_timeout` is closed with 421 (aborted if the client does not even read its answers).
- RCPT: only our configured mail domains, and `postmaster` (550 otherwise, so we are never an open relay).
- DATA: size limit (552); lines of any length within it, since real mail has long lines. A message
  over `PARSE_IN_THREAD_BYTES` goes to disk as it arrives and waits for one of
  `smtp_large_messages_at_once` turns to be read back, parsed and stored: memory stays bounded however
  many arrive at once. Raw RFC 822 bytes kept, parsed, ingested.
- PIPELINING (RFC 2920) is offered, and the answers to a group of commands go out in one write.
- Database unavailable: 451, so the sending server retries; nothing is half-stored because the
  ingest is one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any, AnyStr, cast

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

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
_LIBRARY_LOG = logging.getLogger("mail.log")  # aiosmtpd's logger

Ingest = Callable[[InboundMessage], Awaitable[IngestResult]]
StoreRaw = Callable[[bytes], Awaitable[str]]
PARSE_IN_THREAD_BYTES = 256 * 1024  # a "large" message: parsed off the event loop, spooled to disk, rationed
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


def _load_malloc_trim() -> Callable[[int], object] | None:
    """glibc's `malloc_trim`; None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], object] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def give_memory_back() -> None:
    """Return freed heap pages to the OS. After a large message glibc keeps them (its mmap threshold
    grows with each big free), and the resting RSS would stay at its peak."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class IntakeHandler:
    """aiosmtpd handler; the work happens in the pipeline (ARCHITECTURE: keep the handler thin)."""

    def __init__(self, config: Config, ingest: Ingest, store_raw: StoreRaw, *,
                 large_messages_at_once: int | None = None, large_message_wait: float | None = None,
                 refused: Callable[[str], None] | None = None):
        """The large-message limits default to the config's `[service] smtp_large_*` (fixed at start)."""
        self.ingest = ingest
        self.refused = refused  # told the code of every 5xx we answer (552 too big, 550 relaying…)
        self.store_raw = store_raw
        service = config.service
        self.large_message_wait = (large_message_wait if large_message_wait is not None
                                   else service.smtp_large_message_wait.total_seconds())
        self._large_turns = asyncio.Semaphore(large_messages_at_once or service.smtp_large_messages_at_once)
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """A new configuration (SIGHUP): accepted domains and size limits follow it."""
        self.config = config
        self.domains = {d.lower() for d in config.service.mail_domains}

    @property
    def spool_dir(self) -> Path:
        """Where large messages wait, as unnamed files: on the data disk, not in memory (or a tmpfs)."""
        return self.config.settings.data_dir / "spool"

    @contextlib.asynccontextmanager
    async def large_message(self) -> AsyncIterator[bool]:
        """A turn to hold a large message in memory (read, parse, store); False after waiting
        `large_message_wait` in vain. Memory is given back to the OS after the turn."""
        try:
            async with asyncio.timeout(self.large_message_wait):
                await self._large_turns.acquire()
        except TimeoutError:
            yield False
            return
        try:
            yield True
        finally:
            self._large_turns.release()
            give_memory_back()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """aiosmtpd's EHLO answer, offering PIPELINING (RFC 2920): mail servers then send MAIL, RCPT
        and DATA together and get the three answers in one packet (`IntakeSMTP.push`), which halves
        the round trips and socket writes per mail."""
        session.host_name = hostname  # this form of the hook leaves it to us
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        _, at, domain = address.rpartition("@")
        # RFC 5321 §4.5.1: mail to postmaster must be accepted, with our domains (as any local part
        # is) and as the bare `<Postmaster>`.
        if not (domain.lower().rstrip(">") in self.domains if at else address.lower() == "postmaster"):
            return "550 5.7.1 Relaying denied: this server only accepts mail for its support addresses"
        if len(envelope.rcpt_tos) >= 50:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # From here only `raw` holds the bytes, and only until the message is built: a 10 MB mail is
        # not kept through the ingest, which waits on the database.
        envelope.original_content = envelope.content = None
        try:
            raw_ref = await self.store_raw(raw)
            limits = {"max_attachments": self.config.service.max_attachments,
                      "max_attachment_bytes": self.config.service.max_attachment_bytes}
            if len(raw) > PARSE_IN_THREAD_BYTES:  # big mail parses for up to a second: not on the event loop
                parsed = await asyncio.to_thread(parse_email, raw, **limits)
            else:
                parsed = parse_email(raw, **limits)
            message = to_inbound(parsed, raw, raw_ref, envelope.mail_from, list(envelope.rcpt_tos))
            del raw, parsed  # the message keeps what it needs; a text beyond MAX_TEXT_CHARS lives on in the raw file
            result = await self.ingest(message)
        except StorageFailed:
            return "451 4.3.0 Requested action aborted: local error in processing"
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("SMTP intake: database unavailable or too slow (%r); answering 451", exc)
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
        if result.duplicate:  # where a redelivered Message-ID went is only told to its own sender
            return f"250 2.0.0 OK duplicate of {result.ticket_ref}" if result.ticket_ref else "250 2.0.0 OK duplicate"
        return f"250 2.0.0 OK queued as {result.ticket_ref}"


# aiosmtpd closes the connection right after these answers (502: too many unknown commands; its
# other 502s, to VRFY and EXPN, are rare enough to go alone too).
_CLOSING_CODES = ("221", "421", "502")
_FLUSH_BYTES = 16 * 1024  # answers waiting beyond this are written at once (see `IntakeSMTP.push`)
_SIMPLE_PATH = re.compile(r"^<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(.*)$", re.DOTALL)
_LINE_START_DOT = b"\r\n."


class ConnectionLimits:
    """Open SMTP connections per client address and in all, shared by one server's sessions."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self.count = 0
        self.per_address: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        if self.count >= self.total or self.per_address[address] >= self.per_ip:
            return False
        self.count += 1
        self.per_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.count -= 1
        self.per_address[address] -= 1
        if not self.per_address[address]:
            del self.per_address[address]


class Spool:
    """A message as it arrives: in memory up to `PARSE_IN_THREAD_BYTES`, then in an unnamed file in
    `directory`, so a large message costs no memory while it arrives or waits for its turn."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.size = 0
        self.head = bytearray()
        self.file: IO[bytes] | None = None

    @property
    def large(self) -> bool:
        return self.size > PARSE_IN_THREAD_BYTES

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.file is None and not self.large:
            self.head += data
            return
        if self.file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.file = tempfile.TemporaryFile(dir=self.directory)
            self.file.write(self.head)
            self.head = bytearray()
        self.file.write(data)

    def take(self) -> bytes:
        """The whole message; the spool lets go of its own copy."""
        if self.file is None:
            data = bytes(self.head)
        else:
            self.file.seek(0)
            data = self.file.read()
        self.close()
        return data

    def close(self) -> None:
        """Let go of the data (the file deletes itself); `size` stays."""
        self.head = bytearray()
        if self.file is not None:
            self.file.close()
            self.file = None


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with connection limits, an idle timeout that says 421, a DATA phase of
    bounded memory that takes lines of any length, and a fast path for the address syntax nearly
    every server sends (`MAIL FROM:<user@example.com> SIZE=…`): aiosmtpd parses each address with
    the stdlib's full RFC 5322 header parser, a tenth of our per-message CPU. Anything else takes
    that parser."""

    async def push(self, status: AnyStr) -> None:
        """Every answer goes out here: count the permanent refusals (the size limit's 552 comes from
        inside DATA, before any handler hook), and send the answers to a group of commands in one
        write. aiosmtpd writes each answer alone, and on this machine each write to a socket costs
        more CPU than parsing the command it answers. Answers wait only until this session has to
        wait for its client (the loop then runs `_send_replies`), so a lock-step client sees no delay
        while a pipelining one (RFC 2920: MAIL, RCPT and DATA sent together) gets its three answers,
        or an EHLO its six lines, in one packet. Answers before the connection closes go at once.

        Flow control still holds: a burst of commands already read is answered without the loop
        turning, so answers also go at once when `_FLUSH_BYTES` wait or the socket is backed up
        (the transport holds unsent bytes: the client is not reading), and then `drain()` stops
        this session at the transport's high-water mark instead of the server buffering them all."""
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        refused = getattr(self.event_handler, "refused", None)
        if text[:1] == "5" and refused is not None:
            refused(text[:3])
        answer = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
        self._replies.append(answer + b"\r\n")
        self._replies_bytes += len(answer) + 2
        transport = cast(asyncio.WriteTransport | None, self.transport)
        if (text[:3] in _CLOSING_CODES or self._replies_bytes >= _FLUSH_BYTES
                or (transport is not None and transport.get_write_buffer_size())):
            self._send_replies()
        elif len(self._replies) == 1:
            self.loop.call_soon(self._send_replies)
        await self._writer.drain()  # flow control: a client that does not read is not written without bound

    def _send_replies(self) -> None:
        """Write the waiting answers, also to a closing transport: one closed with bytes still unsent
        flushes these too (after the connection is lost asyncio drops them)."""
        if self._replies and self.transport is not None:
            cast(asyncio.WriteTransport, self.transport).write(b"".join(self._replies))
        self._replies.clear()
        self._replies_bytes = 0

    def __init__(self, handler: IntakeHandler, *, limits: ConnectionLimits | None = None, **options: Any) -> None:
        super().__init__(handler, **options)
        self.limits = limits
        self.client_address: str | None = None  # set once admitted (and counted)
        self._replies: list[bytes] = []  # answers not yet written (see `push`)
        self._replies_bytes = 0  # their size
        self.receiving = False  # in DATA, within the size limit: arriving bytes mean the client is not idle
        self.received_at = 0.0

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg)
        if match and ".." not in match.group(1) and not match.group(1).startswith("."):
            return match.group(1), match.group(2).lstrip()
        return super()._getaddr(arg)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if self.limits is not None and not self.limits.admit(address):
            log.info("SMTP intake: refusing a connection from %s: too many connections", address)
            cast(asyncio.WriteTransport, transport).write(b"421 4.7.0 Too many connections\r\n")
            transport.close()
            return
        self.client_address = address
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.client_address is None:  # refused: no session was started
            asyncio.StreamReaderProtocol.connection_lost(self, error)
            return
        if self.limits is not None:
            self.limits.release(self.client_address)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.received_at = self.loop.time()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        """aiosmtpd times a session out `timeout` after its last command, even while a slow message
        is still arriving, and without a word; here arriving DATA counts, and 421 is said first
        (RFC 5321 §3.8). A connection whose answers are still unsent is aborted: its client has not
        taken them for the whole timeout, and a plain close would wait for it for ever, holding its
        connection slot (`connection_lost` releases it)."""
        idle = self.loop.time() - self.received_at
        if self.receiving and idle < self._timeout_duration:
            self._reset_timeout(self._timeout_duration - idle)
            return
        transport = cast(asyncio.WriteTransport, self.transport)
        if not transport.is_closing():
            self._replies.append(f"421 4.4.2 {self.hostname} Error: timeout exceeded\r\n".encode())
            self._send_replies()
            super()._timeout_cb()
        if transport.get_write_buffer_size():
            log.info("SMTP intake: aborting a connection from %s that does not read its answers", self.client_address)
            transport.abort()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        """aiosmtpd's DATA, but its lines may be as long as the size limit allows (aiosmtpd refuses
        lines over 1,000 bytes with a permanent 500), the message goes to a `Spool` as it arrives,
        a large one waits for its turn, and arriving data keeps the session from timing out."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        spool = Spool(self.event_handler.spool_dir)
        self.receiving = True
        try:
            status = await self._receive(spool)
            assert self._timeout_handle is not None
            self._timeout_handle.cancel()  # our turn now: the client waits for our answer, not idle
            if status is None:
                status = await self._deliver(spool)
        finally:
            self.receiving = False
            spool.close()
        self._set_post_data_state()
        await self.push(status)
        self._reset_timeout()

    async def _receive(self, spool: Spool) -> str | None:
        """Read up to the lone `.` line, undoing dot-stuffing (RFC 5321 §4.5.2), into `spool`;
        None when the message is whole, else the answer (sent once all of it has arrived).

        The stream is read in blocks ending at `.<CRLF>` (or as much as has arrived), not line by
        line; only `<CRLF>.<CRLF>` ends the message, never a bare LF before the dot (SMTP smuggling)."""
        limit = self.data_size_limit
        received = 0
        before = b"\r\n"  # the last two bytes read: the message starts at the start of a line
        status: str | None = None
        while True:
            try:
                block = await self._reader.readuntil(b".\r\n")
                found = True
            except asyncio.LimitOverrunError as exc:  # no `.<CRLF>` yet: take what is surely not part of one
                block = await self._reader.read(exc.consumed)
                found = False
            joined = before + block
            last = found and joined[-5:-3] == b"\r\n"  # that dot starts a line: the end
            data = joined.replace(_LINE_START_DOT, b"\r\n")[2:]
            if last:
                data = data[:-2]  # what is left of the lone dot's line (its dot went with the stuffing)
            before = joined[-2:]
            received += len(data)
            if status is None and limit and received > limit:
                status = "552 5.3.4 Error: Too much mail data"
                self.receiving = False  # the rest is drained, but not waited for beyond the timeout
                spool.close()
            elif status is None:
                try:
                    spool.write(data)
                except OSError as exc:
                    log.error("SMTP intake: cannot spool a message to %s: %r; answering 451", spool.directory, exc)
                    status = "451 4.3.0 Temporary local problem: please try again later"
                    self.receiving = False
                    spool.close()
            if last:
                return status

    async def _deliver(self, spool: Spool) -> str:
        """Hand the message to the handler; a large one only in its turn."""
        assert self.envelope is not None
        if not spool.large:
            self.envelope.original_content = self.envelope.content = spool.take()
            return str(await self._call_handler_hook("DATA"))
        async with self.event_handler.large_message() as turn:
            if not turn:
                log.warning("SMTP intake: no turn for a %d-byte message in %ss; answering 451", spool.size,
                            self.event_handler.large_message_wait)
                return "451 4.3.2 Too busy with large messages: please try again later"
            try:
                raw = await asyncio.to_thread(spool.take)
            except OSError as exc:
                log.error("SMTP intake: cannot read a spooled message back: %r; answering 451", exc)
                return "451 4.3.0 Temporary local problem: please try again later"
            self.envelope.original_content = self.envelope.content = raw
            del raw  # the handler lets go of it as soon as it can
            return str(await self._call_handler_hook("DATA"))


async def start_server(handler: IntakeHandler, host: str, port: int, *, hostname: str,
                       max_connections: int | None = None, max_connections_per_ip: int | None = None,
                       idle_timeout: float | None = None, reuse_port: bool = False) -> asyncio.Server:
    """Serve SMTP on the running event loop (not aiosmtpd's thread Controller), so the handler
    shares the app's database pool and loop. Each connection takes the size limit the handler's
    current config sets; the connection limits default to the config's `[service] smtp_*` (per
    process). `reuse_port`: several `router serve` processes share the port (SO_REUSEPORT)."""
    if _LIBRARY_LOG.level == logging.NOTSET:
        # aiosmtpd logs every command of every session at INFO, five lines per mail: at a thousand
        # mails a second that is most of the log and ~5 % of the intake's CPU. What matters
        # (refusals, storage trouble) we log ourselves; a logging config that sets "mail.log" wins.
        _LIBRARY_LOG.setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    service = handler.config.service
    limits = ConnectionLimits(max_connections or service.smtp_max_connections,
                              max_connections_per_ip or service.smtp_max_connections_per_ip)
    idle_timeout = idle_timeout or service.smtp_idle_timeout.total_seconds()
    return await loop.create_server(
        lambda: IntakeSMTP(handler, limits=limits, data_size_limit=handler.config.service.max_message_bytes,
                           enable_SMTPUTF8=True, hostname=hostname, ident="support-router ESMTP",
                           timeout=idle_timeout),
        host=host, port=port, reuse_port=reuse_port)
