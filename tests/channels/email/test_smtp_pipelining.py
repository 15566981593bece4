"""The SMTP intake offers PIPELINING (RFC 2920) and answers a group of commands in one write, while a
lock-step client, QUIT and the idle timeout still get every answer at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from channels.email import intake
from channels.email.intake import IntakeHandler, start_server
from router.core.inbound import InboundMessage, IngestResult
from tests.conftest import free_port


class CountingSMTP(intake.IntakeSMTP):
    """The intake's protocol, recording each write to the socket."""

    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: Any) -> None:
        original = transport.write

        def write(data: bytes) -> None:
            CountingSMTP.writes.append(bytes(data))
            original(data)

        transport.write = write
        super().connection_made(transport)


async def _stored(raw: bytes) -> str:
    return "raw:test"


async def _ingest(message: InboundMessage) -> IngestResult:
    return IngestResult(message_id=1, ticket_id=1, ticket_ref="T-1", duplicate=False)


@contextlib.asynccontextmanager
async def counting_server(config, monkeypatch, **options: float) -> AsyncIterator[int]:
    monkeypatch.setattr(intake, "IntakeSMTP", CountingSMTP)
    CountingSMTP.writes = []
    port = free_port()
    server = await start_server(IntakeHandler(config, _ingest, _stored), "127.0.0.1", port, hostname="example.com",
                                **options)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def reply(reader: asyncio.StreamReader) -> bytes:
    lines = b""
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        lines += line
        if line[3:4] != b"-":
            return lines


async def test_ehlo_offers_pipelining_in_one_write(config, monkeypatch):
    async with counting_server(config, monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO client.example\r\n")
        features = (await reply(reader)).decode()
        writer.close()
    assert "250-PIPELINING\r\n" in features and features.endswith("250 HELP\r\n")
    ehlo = [w for w in CountingSMTP.writes if w.startswith(b"250-")]
    assert ehlo == [features.encode()]  # six lines, one write


async def test_a_pipelined_group_is_answered_in_one_write_and_the_mail_is_taken(config, monkeypatch):
    async with counting_server(config, monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO client.example\r\n")
        await reply(reader)
        CountingSMTP.writes.clear()
        writer.write(b"MAIL FROM:<jo@customer.example>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
        answers = [await reply(reader) for _ in range(3)]
        assert [a[:3] for a in answers] == [b"250", b"250", b"354"]
        assert CountingSMTP.writes == [b"".join(answers)]
        writer.write(b"Subject: hi\r\nMessage-ID: <pipe-1@customer.example>\r\n\r\nhello\r\n.\r\n")
        assert (await reply(reader)).startswith(b"250 2.0.0 OK queued as T-1")
        writer.write(b"QUIT\r\n")
        assert (await reply(reader)).startswith(b"221")  # said before the connection closes
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_a_lock_step_client_gets_each_answer_without_waiting(config, monkeypatch):
    async with counting_server(config, monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reply(reader)).startswith(b"220")
        for command, code in ((b"HELO client.example", b"250"), (b"MAIL FROM:<jo@customer.example>", b"250"),
                              (b"RCPT TO:<nobody@elsewhere.example>", b"550"),
                              (b"RCPT TO:<support@example.com>", b"250"), (b"DATA", b"354")):
            writer.write(command + b"\r\n")
            assert (await reply(reader)).startswith(code), command
        writer.close()


@pytest.mark.parametrize("idle", [0.3])
async def test_the_idle_timeout_still_says_421_before_closing(config, monkeypatch, idle):
    async with counting_server(config, monkeypatch, idle_timeout=idle) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO client.example\r\n")
        await reply(reader)
        assert (await reply(reader)).startswith(b"421 4.4.2")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
