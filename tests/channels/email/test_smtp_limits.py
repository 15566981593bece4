"""The SMTP intake's limits, over real sockets: long lines are mail (never a 5xx for mail we could store),
postmaster is ours, connections are capped per client address and in all, idle sessions are closed, and
only a few large messages are held in memory at once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiosmtplib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email import intake
from channels.email.intake import IntakeHandler, start_server
from router.config import Config
from router.core.inbound import InboundMessage, IngestResult
from router.core.pipeline import Pipeline
from router.core.store.attachments import read_raw
from router.workers import smtp_intake_handler
from tests.conftest import free_port


class Recorder:
    """An intake handler's storage stand-in: keeps the raw bytes it is given, answers as the pipeline would."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def store_raw(self, raw: bytes) -> str:
        self.raw.append(raw)
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    async def ingest(self, message: InboundMessage) -> IngestResult:
        return IngestResult(message_id=len(self.raw), ticket_id=1, ticket_ref="T-1", duplicate=False)


@contextlib.asynccontextmanager
async def serving(handler: IntakeHandler, **limits: float) -> AsyncIterator[int]:
    """The intake on a free port, for the duration of the block."""
    port = free_port()
    server = await start_server(handler, "127.0.0.1", port, hostname="example.com", **limits)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def stored(config, pool, clock) -> AsyncIterator[int]:
    """The intake on the real pipeline and database."""
    pipeline = Pipeline(config, clock)
    async with serving(smtp_intake_handler(config, pool, lambda: pipeline)) as port:
        yield port


def recording(config: Config, **options: Any) -> tuple[IntakeHandler, Recorder]:
    recorder = Recorder()
    return IntakeHandler(config, recorder.ingest, recorder.store_raw, **options), recorder


async def send(port: int, raw: bytes, *, to: str = "support@example.com") -> aiosmtplib.SMTPResponse:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await smtp.connect()
    try:
        await smtp.mail("customer@customer.example")
        await smtp.rcpt(to)
        return await smtp.data(raw)
    finally:
        smtp.close()


def mail_with(body: bytes, number: int = 1) -> bytes:
    return (f"From: Jo <jo@customer.example>\r\nTo: support@example.com\r\nSubject: long line\r\n"
            f"Message-ID: <limits-{number}@customer.example>\r\n\r\n").encode() + body


async def connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw connection and the server's first line (its greeting or its refusal)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    return reader, writer, await asyncio.wait_for(reader.readline(), 5)


async def dialogue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """From the greeting to the 354 that asks for the message."""
    for command, code in ((b"HELO client.example", b"250"), (b"MAIL FROM:<a@customer.example>", b"250"),
                          (b"RCPT TO:<support@example.com>", b"250"), (b"DATA", b"354")):
        writer.write(command + b"\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(code)


# --- long lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [5_000, 200_000])
async def test_long_lines_are_stored_whole(stored, pool, data_dir, length):
    line = (b"word " * (length // 5 + 1))[:length - 3] + b"END"
    raw = mail_with(line + b"\r\n")
    answer = await send(stored, raw)
    assert answer.code == 250, answer
    row = await pool.fetchrow("SELECT body_text, raw_ref FROM messages WHERE external_id = 'limits-1@customer.example'")
    assert row["body_text"] == line.decode()
    assert read_raw(data_dir, row["raw_ref"]) == raw


async def test_line_longer_than_the_size_limit_is_refused_as_too_big(config):
    small = replace(config, service=replace(config.service, max_message_bytes=100_000))
    handler, recorder = recording(small)
    async with serving(handler) as port:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await send(port, mail_with(b"x" * 150_000 + b"\r\n"))
        assert refused.value.code == 552
        assert (await send(port, mail_with(b"x" * 50_000 + b"\r\n"))).code == 250  # within the limit: stored
    assert len(recorder.raw) == 1


async def test_commands_stay_bounded_by_the_command_size_limit(config):
    handler, _ = recording(config)
    async with serving(handler) as port:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
        await smtp.connect()
        await smtp.ehlo()
        await smtp.mail("customer@customer.example")
        answer = await smtp.execute_command(b"RCPT", b"TO:<" + b"a" * 5_000 + b"@example.com>")
        assert (answer.code, answer.message) == (500, "Command line too long")
        assert (await smtp.noop()).code == 250
        smtp.close()


@st.composite
def message_bodies(draw) -> bytes:
    """Bytes that stress the end of DATA and dot-stuffing: dots at line starts, lone dots after a bare
    LF or CR (which must not end the message), long lines."""
    pieces = st.sampled_from([b".", b"..", b"\r\n", b"\n", b"\r", b"\r\n.", b"\n.\r\n", b"x", b"x.",
                              b".\r\n", b"a" * 1500, b"\r\n..\r\n", b"\xe3\x81\x82"])
    body = b"".join(draw(st.lists(pieces, max_size=40)))
    return body if body.endswith(b"\r\n") else body + b"\r\n"


def dot_stuffed(body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


def test_data_arrives_byte_exact_however_it_is_cut(config):
    """Whatever the message holds and however TCP cuts it, the handler gets exactly what was sent."""
    loop = asyncio.new_event_loop()
    handler, recorder = recording(config)
    port = free_port()
    server = loop.run_until_complete(start_server(handler, "127.0.0.1", port, hostname="example.com"))

    async def deliver(body: bytes, cuts: list[int]) -> bytes:
        reader, writer, _ = await connect(port)
        await dialogue(reader, writer)
        data = dot_stuffed(body)
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            writer.write(data[start:end])
            await writer.drain()
            await asyncio.sleep(0)
        answer = await reader.readline()
        writer.close()
        return answer

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message_bodies(), st.data())
    def check(body: bytes, data: st.DataObject) -> None:
        length = len(dot_stuffed(body))
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(length - 1, 1)), max_size=6))) - {length})
        answer = loop.run_until_complete(deliver(body, cuts))
        assert answer.startswith(b"250"), answer
        assert recorder.raw[-1] == body

    try:
        check()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


# --- postmaster --------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", ["postmaster@example.com", "Postmaster@EXAMPLE.COM", "Postmaster", "POSTMASTER"])
async def test_postmaster_is_accepted(stored, pool, recipient):
    answer = await send(stored, mail_with(b"Your server sent us a bounce.\r\n"), to=recipient)
    assert answer.code == 250, answer
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE external_id = 'limits-1@customer.example'") == 1


async def test_postmaster_elsewhere_is_still_relaying(config):
    handler, _ = recording(config)
    async with serving(handler) as port:
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await send(port, mail_with(b"hello\r\n"), to="postmaster@elsewhere.example")
        assert refused.value.code == 550


# --- connections -------------------------------------------------------------------------------------


async def test_connections_over_the_per_ip_cap_get_421(config):
    handler, _ = recording(config)
    async with serving(handler) as port:
        opened = [await connect(port) for _ in range(20)]
        assert all(greeting.startswith(b"220") for _, _, greeting in opened)
        reader, writer, refusal = await connect(port)
        assert refusal == b"421 4.7.0 Too many connections\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
        writer.close()
        _, other, greeting = await connect(port, source="127.0.0.2")  # another client is not held back
        assert greeting.startswith(b"220")
        other.close()
        opened[0][1].close()
        await asyncio.sleep(0.1)
        _, again, greeting = await connect(port)  # a closed connection frees its place
        assert greeting.startswith(b"220")
        for _, writer, _ in [*opened[1:], (None, again, None)]:
            writer.close()


async def test_connections_over_the_total_cap_get_421(config):
    handler, _ = recording(config)
    async with serving(handler, max_connections=3) as port:
        opened = [await connect(port, source=f"127.0.0.{n}") for n in (1, 2, 3)]
        assert all(greeting.startswith(b"220") for _, _, greeting in opened)
        _, writer, refusal = await connect(port, source="127.0.0.4")
        assert refusal == b"421 4.7.0 Too many connections\r\n"
        for _, open_writer, _ in [*opened, (None, writer, None)]:
            open_writer.close()


async def test_idle_session_is_closed_with_421(config):
    handler, _ = recording(config)
    async with serving(handler, idle_timeout=0.5) as port:
        reader, writer, greeting = await connect(port)
        assert greeting.startswith(b"220")
        for _ in range(3):  # a client that talks is not idle
            await asyncio.sleep(0.3)
            writer.write(b"NOOP\r\n")
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"250")
        started = time.monotonic()
        assert await asyncio.wait_for(reader.readline(), 5) == b"421 4.4.2 example.com Error: timeout exceeded\r\n"
        assert 0.4 < time.monotonic() - started < 2
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_slow_sender_is_not_cut_off_while_data_arrives(config):
    handler, recorder = recording(config)
    async with serving(handler, idle_timeout=0.5) as port:
        reader, writer, _ = await connect(port)
        await dialogue(reader, writer)
        body = mail_with(b"".join(b"line %d\r\n" % n for n in range(8)))
        for start in range(0, len(body), len(body) // 6 + 1):  # over ~1.5 s: three idle timeouts
            writer.write(body[start:start + len(body) // 6 + 1])
            await asyncio.sleep(0.25)
        writer.write(b".\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"250")
        assert recorder.raw == [body]
        for command in (b"MAIL FROM:<a@customer.example>", b"RCPT TO:<support@example.com>", b"DATA"):
            writer.write(command + b"\r\n")
            await reader.readline()
        writer.write(b"Subject: and then nothing more")  # a sender that stops in the middle is idle
        assert await asyncio.wait_for(reader.readline(), 5) == b"421 4.4.2 example.com Error: timeout exceeded\r\n"
        writer.close()


# --- large messages ----------------------------------------------------------------------------------


def slow_parse(monkeypatch, seconds: float) -> Callable[[], int]:
    """Make parsing take `seconds`; returns how many parses ran at once at most."""
    parse, lock = intake.parse_email, threading.Lock()
    running, most = 0, 0

    def parse_email(raw: bytes, **limits: int):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(seconds)
        with lock:
            running -= 1
        return parse(raw, **limits)

    monkeypatch.setattr(intake, "parse_email", parse_email)
    return lambda: most


def large_mail(number: int) -> bytes:
    return mail_with(b"".join(b"log line %06d of a large attachment\r\n" % n for n in range(10_000)), number)


@pytest.mark.parametrize(("options", "at_once"), [({}, 1), ({"large_messages_at_once": 2}, 2)])
async def test_large_messages_are_parsed_a_few_at_a_time(config, monkeypatch, options, at_once):
    most_at_once = slow_parse(monkeypatch, 0.3)
    handler, recorder = recording(config, **options)
    async with serving(handler) as port:
        answers = await asyncio.gather(*(send(port, large_mail(n)) for n in range(5)))
    assert [a.code for a in answers] == [250] * 5
    assert most_at_once() == at_once  # by default [service] smtp_large_messages_at_once, 1
    assert sorted(recorder.raw) == sorted(large_mail(n) for n in range(5))


async def test_large_message_gets_451_after_waiting_too_long(config, monkeypatch):
    slow_parse(monkeypatch, 1.0)
    handler, recorder = recording(config, large_messages_at_once=1, large_message_wait=0.2)
    async with serving(handler) as port:
        answers = await asyncio.gather(*(send(port, large_mail(n)) for n in range(2)), return_exceptions=True)
    codes = sorted(a.code for a in answers)  # type: ignore[union-attr]
    assert codes == [250, 451], answers
    assert len(recorder.raw) == 1


async def test_large_message_that_cannot_be_spooled_gets_451(config, tmp_path):
    (tmp_path / "spool").write_text("a file where the spool directory should be")
    handler, recorder = recording(replace(config, settings=replace(config.settings, data_dir=tmp_path)))
    async with serving(handler) as port:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await send(port, large_mail(1))
        assert refused.value.code == 451
        assert (await send(port, mail_with(b"a small one needs no spool\r\n"))).code == 250
    assert len(recorder.raw) == 1
