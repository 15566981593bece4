"""The SMTP handler under malformed MIME: it never crashes, stores what it accepts, and accepts
all mail for our domains (a permanent refusal would lose the customer's message), a long plain-text
mail too, truncated; mail from a null envelope sender gets no acknowledgement."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.intake import IntakeSMTP, start_server
from router import db
from router.core.pipeline import Pipeline
from router.workers import smtp_intake_handler
from tests.conftest import free_port

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.eml"))
SEEDS = [path.read_bytes() for path in FIXTURES]

header_soup = st.lists(st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=\"", b"Content-Type: text/plain; charset=x-unknown\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Subject: =?ISO-2022-JP?B?GyRCJCIbKEI?=\r\n",
    b"From: \"\xff\xfe\" <@>\r\n", b"Message-ID: <>\r\n", b"--\r\n", b"\r\n\r\n", b"=?utf-8?q?=E3=81?=",
    b"In-Reply-To: <a@b> <c@d>\r\n", b"Content-Type: message/rfc822\r\n", b"\x00", b"\x1b$B",
]), max_size=12).map(b"".join)


@st.composite
def malformed_mail(draw) -> bytes:
    seed = draw(st.sampled_from(SEEDS))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=3000))
    if choice == 1:
        cut = draw(st.integers(0, len(seed)))
        return seed[:cut]
    if choice == 2:
        at = draw(st.integers(0, len(seed)))
        return seed[:at] + draw(header_soup) + seed[at:]
    flips = draw(st.lists(st.tuples(st.integers(0, max(len(seed) - 1, 0)), st.integers(0, 255)), max_size=20))
    data = bytearray(seed)
    for index, value in flips:
        if data:
            data[index] = value
    return bytes(data)


def test_malformed_mime_never_crashes_and_250_means_stored(database, config):
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(db.create_pool(database, min_size=1, max_size=2))
    pipeline = Pipeline(config)

    handler = smtp_intake_handler(config, pool, lambda: pipeline)

    async def deliver(raw: bytes) -> tuple[str, int]:
        envelope = Envelope()
        envelope.mail_from = "fuzz@customer.example"
        envelope.rcpt_tos = ["support@example.com"]
        envelope.original_content = raw
        envelope.content = raw
        before = await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'")
        answer = await handler.handle_DATA(None, None, envelope)
        after = await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'")
        return answer, after - before

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(malformed_mail())
    def check(raw: bytes) -> None:
        answer, stored = loop.run_until_complete(deliver(raw))
        # Whatever arrives is kept (garbage included, for a person to look at); a redelivery is not.
        assert answer.startswith("250"), answer
        assert stored == (0 if "OK duplicate" in answer else 1), answer

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


@pytest.mark.parametrize("arg", [
    "<user@example.com>", "<user@example.com> SIZE=1000", "<a.b+tag@mail.example.co.jp> BODY=8BITMIME",
    "user@example.com", "<>", "<\"quoted local\"@example.com>", "<a..b@example.com>", "<.a@example.com>",
    "<@route:user@example.com>", "<user@[127.0.0.1]>", "<broken", "<user@example.com",
    "<user@example.com>   SIZE=5  BODY=7BIT", "<user@example.com>\t", "<UPPER@EXAMPLE.COM>", "<user@-bad-.example>",
])
def test_fast_address_path_agrees_with_aiosmtpd(arg):
    """The fast path must answer exactly what aiosmtpd's own parser answers."""
    fast = IntakeSMTP(handler=object())._getaddr(arg)
    reference = SMTP(handler=object())._getaddr(arg)
    assert fast == reference


async def test_null_envelope_sender_is_not_acknowledged(config, pool, clock):
    p = Pipeline(config, clock)

    handler = smtp_intake_handler(config, pool, lambda: p)
    port = free_port()
    server = await start_server(handler, "127.0.0.1", port,
                                hostname="example.com")
    raw = (b"From: Jo <jo@example.net>\r\nTo: support@example.com\r\nSubject: hello\r\n"
           b"Message-ID: <nullsender-1@example.net>\r\n\r\nI am away until Monday.\r\n")
    try:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        await smtp.mail("")
        await smtp.rcpt("support@example.com")
        await smtp.data(raw)
        await smtp.quit()
    finally:
        server.close()
    acks = await pool.fetchval("SELECT count(*) FROM outbox WHERE kind='ack'")
    assert acks == 0


async def test_long_plain_text_mail_is_accepted_truncated(config, pool, clock):
    p = Pipeline(config, clock)

    handler = smtp_intake_handler(config, pool, lambda: p)
    log = ("ERROR 2026-11-25 stack frame at module.function line 42\r\n" * 5000).encode()  # ~290 KB, < 10 MB limit
    raw = (b"From: dev@example.net\r\nTo: support@example.com\r\nSubject: crash log\r\n"
           b"Message-ID: <big-1@example.net>\r\n\r\nHere is the log:\r\n" + log)
    env = Envelope()
    env.mail_from = "dev@example.net"
    env.rcpt_tos = ["support@example.com"]
    env.original_content = env.content = raw
    answer = await handler.handle_DATA(None, None, env)
    assert answer.startswith("250")
    text = await pool.fetchval("SELECT body_text FROM messages WHERE external_id = 'big-1@example.net'")
    assert text.startswith("Here is the log:")
    assert text.endswith("[… truncated: the full text is in the original message]")
