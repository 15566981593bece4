"""The database freezes (every PostgreSQL process SIGSTOPped, as under a stalled disk or a paused VM):
a real `router serve` must answer 503 + Retry-After and SMTP 451 within its database timeouts instead
of hanging until the client gives up, and recover by itself when the server thaws (SPEC §2.2, §4)."""

from __future__ import annotations

import asyncio
import signal
import time
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import httpx
import pytest

from router.db import ACQUIRE_TIMEOUT, COMMAND_TIMEOUT
from tests.e2e.helpers import API_TOKEN, Serve, serve_process

FREEZE_SECONDS = 9.0
BOUND = max(ACQUIRE_TIMEOUT, COMMAND_TIMEOUT) + 2.0
"""How long a request may take on a frozen database: one timeout, plus slack for a busy machine."""


def api_message(external_id: str) -> dict:
    return {"channel": "api", "sender": {"email": "frozen@customer.example"}, "text": "返金をお願いします",
            "external_id": external_id}


def mail(message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Frozen <frozen-mail@customer.example>"
    message["To"] = "support@example.com"
    message["Subject"] = "荷物が届きません"
    message["Message-ID"] = message_id
    message.set_content("注文した商品がまだ届きません。")
    return message.as_bytes()


async def post(client: httpx.AsyncClient, external_id: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post("/api/v1/messages", json=api_message(external_id))
    return response, time.monotonic() - started


async def smtp_data(serve: Serve, raw: bytes) -> tuple[int, str, float]:
    """One SMTP transaction; returns the DATA reply and how long DATA took to answer."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=serve.smtp_port, timeout=60)
    await client.connect()
    try:
        await client.ehlo()
        await client.mail("frozen-mail@customer.example")
        await client.rcpt("support@example.com")
        started = time.monotonic()
        try:
            reply = await client.data(raw)
            code, text = reply.code, reply.message
        except aiosmtplib.SMTPResponseException as exc:
            code, text = exc.code, exc.message
        return code, text, time.monotonic() - started
    finally:
        client.close()


async def thaw_after(serve: Serve, seconds: float) -> None:
    """Thaw on time whatever the requests do: a hanging request must not lengthen the freeze."""
    try:
        await asyncio.sleep(seconds)
    finally:
        serve.signal_postgres(signal.SIGCONT)


async def test_frozen_database_answers_503_and_451_in_time_then_recovers(tmp_path):
    message_id = "<freeze-1@customer.example>"
    with serve_process(tmp_path) as serve:
        async with httpx.AsyncClient(base_url=serve.base_url, timeout=60,
                                     headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
            warm, _ = await post(client, "freeze-warm-up")  # the pool holds live connections when it freezes
            assert warm.status_code == 202, warm.text

            frozen = serve.signal_postgres(signal.SIGSTOP)
            assert len(frozen) > 3, frozen  # the postmaster and its backends and workers
            thaw = asyncio.create_task(thaw_after(serve, FREEZE_SECONDS))  # however long the requests take
            try:
                (response, http_took), (code, text, smtp_took) = await asyncio.gather(
                    post(client, "freeze-api-1"), smtp_data(serve, mail(message_id)))
                ready = await client.get("/readyz")
                still_frozen = not thaw.done()
            finally:
                await thaw
            context = (f"HTTP {response.status_code} after {http_took:.1f}s, SMTP {code} after {smtp_took:.1f}s"
                       f" (bound {BOUND:.1f}s)\n{serve.log_tail()}")
            print(context.splitlines()[0])
            assert still_frozen, "the answers came after the freeze ended: " + context
            assert response.status_code == 503 and response.json()["error"] == "unavailable", context
            assert response.headers["Retry-After"].isdigit(), context
            assert http_took < BOUND, context
            assert code == 451, f"{text}; {context}"
            assert smtp_took < BOUND, context
            assert ready.status_code == 503, context

            # Thawed: the same sender retries as it was told to, and the service recovered by itself.
            deadline = time.monotonic() + 30
            while True:
                response, _ = await post(client, "freeze-api-1")
                code, text, _ = await smtp_data(serve, mail(message_id))
                if (response.status_code, code) == (202, 250) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert response.status_code == 202, f"{response.text}\n{serve.log_tail()}"
            assert code == 250, f"{text}\n{serve.log_tail()}"
            again, _ = await post(client, "freeze-api-1")
            assert again.status_code == 202 and again.json()["duplicate"] is True
            assert (await smtp_data(serve, mail(message_id)))[0] == 250

        conn = await asyncpg.connect(serve.dsn())
        try:
            stored = await conn.fetch(
                "SELECT channel, external_id, count(*) AS n FROM messages WHERE direction = 'in'"
                " AND external_id IN ('freeze-api-1', $1) GROUP BY 1, 2 ORDER BY 1", message_id.strip("<>"))
        finally:
            await conn.close()
        assert [(r["channel"], r["n"]) for r in stored] == [("api", 1), ("email", 1)], stored


@pytest.mark.parametrize("error", [
    asyncpg.InternalClientError("connection torn down mid-statement"),  # seen at shutdown: was a 500
    asyncpg.exceptions.OutdatedSchemaCacheError("cached statement outdated"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    TimeoutError(),
], ids=lambda error: type(error).__name__)
async def test_client_side_database_errors_answer_503(client, auth, monkeypatch, error):
    """What asyncpg raises while a connection closes or times out is "retry later", never a 500."""
    async def failing(pool, message):
        raise error

    monkeypatch.setattr(client._transport.app.state.services.pipeline, "ingest", failing)
    response = await client.post("/api/v1/messages", headers=auth, json=api_message("client-error-1"))
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit(), response.text
