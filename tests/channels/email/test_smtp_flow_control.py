"""The SMTP intake's batched answers (`IntakeSMTP.push`) against clients that misbehave: an answer
followed by a close still reaches the client, a client that never reads cannot make the server buffer
its answers without bound, and at the idle timeout it loses its connection slot."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

from channels.email import intake
from channels.email.intake import IntakeHandler, start_server
from tests.channels.email.test_smtp_pipelining import _ingest, _stored, reply
from tests.conftest import free_port


@contextlib.asynccontextmanager
async def server(config, **options: float) -> AsyncIterator[int]:
    port = free_port()
    smtp = await start_server(IntakeHandler(config, _ingest, _stored), "127.0.0.1", port, hostname="example.com",
                              **options)
    try:
        yield port
    finally:
        smtp.close()


async def hog(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, for a client that never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_the_too_many_unknown_commands_answer_reaches_the_client_before_the_close(config) -> None:
    """aiosmtpd answers the fifth unknown command with `502 ... goodbye` and closes the transport right
    after: that answer must be written before the close, not left waiting for the next loop turn."""
    async with server(config) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reply(reader)).startswith(b"220")
        answers = []
        for n in range(5):
            writer.write(b"BOGUS%d\r\n" % n)
            try:
                answers.append(await reply(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                answers.append(b"<connection closed without an answer>")
                break
        writer.close()
    assert answers[:4] == [b'500 Error: command "BOGUS%d" not recognized\r\n' % n for n in range(4)]
    assert answers[4].startswith(b"502 5.5.1"), answers[4]


async def test_a_client_that_never_reads_cannot_make_the_server_buffer_megabytes(config, monkeypatch) -> None:
    """A pipelined burst already in the reader's buffer (up to ~256 KB of commands) is processed
    without the loop turning; its answers must still stop the session at the transport's high-water
    mark (`drain()`), not all be queued and written past it: ~1 MB per client otherwise, half a
    gigabyte for `smtp_max_connections` of them."""
    sessions: list[intake.IntakeSMTP] = []

    class Recorded(intake.IntakeSMTP):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            sessions.append(self)
            super().connection_made(transport)

    monkeypatch.setattr(intake, "IntakeSMTP", Recorded)
    async with server(config, idle_timeout=30) as port:
        sock = await hog(port)
        burst = b"EHLO hog.example\r\n" * 400_000
        sent, until, held = 0, time.monotonic() + 1.0, 0
        while sent < len(burst) and time.monotonic() < until:
            try:
                sent += sock.send(burst[sent:sent + 65536])
            except BlockingIOError:
                await asyncio.sleep(0.02)
            for session in sessions:
                if session.transport is not None:
                    held = max(held, session.transport.get_write_buffer_size()
                               + sum(len(r) for r in session._replies))
        sock.close()
    assert sent > 1_000_000, sent  # far more answers than the bound below
    assert held <= 256 * 1024, f"the server held {held / 1024:.0f} KB of answers for a client that does not read"


async def test_a_client_that_never_reads_loses_its_slot_at_the_idle_timeout(config) -> None:
    """Its session blocks in `drain()`, the idle timeout fires and says 421; a plain close would wait
    for ever to flush to a client that never reads, so `connection_lost` would never release its
    connection slot: with `smtp_max_connections_per_ip` such clients lock an address (or, from many,
    the whole intake) out."""
    idle = 1.0
    async with server(config, idle_timeout=idle, max_connections_per_ip=1) as port:
        sock = await hog(port)
        burst = b"EHLO hog.example\r\n" * 400_000
        sent, until = 0, time.monotonic() + idle / 2  # then quiet: only the server's answers are pending
        while sent < len(burst) and time.monotonic() < until:  # as much as the server takes in
            try:
                sent += sock.send(burst[sent:sent + 65536])
            except BlockingIOError:
                await asyncio.sleep(0.05)
        assert sent > 1_000_000, sent  # far more answers than any socket buffer holds
        await asyncio.sleep(idle * 3)  # well past the idle timeout
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            greeting = await reply(reader)
            writer.close()
        finally:
            sock.close()
    assert greeting.startswith(b"220"), (
        f"the same address is still refused {idle * 3}s after its idle connection timed out: {greeting!r}")
