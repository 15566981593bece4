"""The social platforms' webhooks (SPEC §3): `GET|POST /webhooks/meta`, `POST /webhooks/line`,
`POST /webhooks/telegram`.

Each one: a channel without its secret configured is a 404 (nothing to verify with); the body is
read bounded, and the channel's adapter checks the signature over those raw bytes before anything
is parsed (401, nothing stored); the messages go through the pipeline one at a time, in the order
the platform sent them, and the platform gets its 200 only after every one is committed (SPEC §2.2).
The pipeline stores a platform's retry of a message once (same platform message id). A database
outage is a 503 with `Retry-After` (the app's error mapping), so the platform retries later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels.base import RawRequest
from channels.line import adapter as line
from channels.meta import adapter as meta
from channels.telegram import adapter as telegram
from router.core.errors import InvalidInput, NotFound, Unauthorized
from router.core.inbound import InboundMessage
from router.core.store import receipts
from router.web.http import DEFAULT_MAX_JSON_BYTES, read_body, services
from router.web.intake import ingest

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = DEFAULT_MAX_JSON_BYTES
"""Meta batches up to 1,000 changes per request; a megabyte holds them with room to spare."""

Parsed = TypeVar("Parsed")
Secrets = TypeVar("Secrets")


async def meta_verify(request: Request) -> Response:
    """Meta's subscription handshake: echo `hub.challenge` when `hub.verify_token` is ours."""
    token = services(request).config.settings.meta_verify_token
    if not token:
        raise NotFound("the Meta channel is not configured (META_VERIFY_TOKEN is not set)")
    return PlainTextResponse(meta.verify_subscription(request.query_params, token))


async def meta_events(request: Request) -> Response:
    secret = services(request).config.settings.meta_app_secret
    if not secret:
        raise NotFound("the Meta channel is not configured (META_APP_SECRET is not set)")
    webhook = _verified(request, "meta", meta.parse, meta.MetaSecrets(secret), await _raw(request))
    stored = await _ingest_all(request, webhook.messages)
    await _record_statuses(request, webhook.statuses)
    return JSONResponse({"stored": stored, "statuses": len(webhook.statuses)})


async def line_events(request: Request) -> Response:
    secret = services(request).config.settings.line_channel_secret
    if not secret:
        raise NotFound("the LINE channel is not configured (LINE_CHANNEL_SECRET is not set)")
    messages = _verified(request, "line", line.parse, line.LineSecrets(secret), await _raw(request))
    return JSONResponse({"stored": await _ingest_all(request, messages)})


async def telegram_events(request: Request) -> Response:
    secret = services(request).config.settings.telegram_secret_token
    if not secret:
        raise NotFound("the Telegram channel is not configured (TELEGRAM_SECRET_TOKEN is not set)")
    messages = _verified(request, "telegram", telegram.parse, telegram.TelegramSecrets(secret),
                         await _raw(request))
    return JSONResponse({"stored": await _ingest_all(request, messages)})


async def _raw(request: Request) -> RawRequest:
    return RawRequest(request.headers, await read_body(request, MAX_WEBHOOK_BYTES))


def _verified(request: Request, channel: str, parse: Callable[[RawRequest, Secrets], Parsed], secrets: Secrets,
              raw: RawRequest) -> Parsed:
    """The adapter's reading of `raw`; a refused signature is counted before the 401 goes out."""
    try:
        return parse(raw, secrets)
    except Unauthorized:
        services(request).metrics.rejected.labels(channel, "unauthorized").inc()
        raise


async def _ingest_all(request: Request, messages: Sequence[InboundMessage]) -> int:
    """Store each message (in order; each commits before the next). A message the pipeline refuses
    as invalid is logged and skipped: the platform would send the same again and again."""
    stored = 0
    for message in messages:
        try:
            result = await ingest(request, message)
        except InvalidInput as exc:
            log.warning("%s: refused message %s: %s", message.channel, message.external_id, exc.detail)
            services(request).metrics.rejected.labels(message.channel, exc.code).inc()
            continue
        stored += not result.duplicate
    return stored


async def _record_statuses(request: Request, statuses: Sequence[meta.StatusUpdate]) -> None:
    """WhatsApp's delivered/read/failed reports, on the messages we sent (one transaction)."""
    if not statuses:
        return
    svc = services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn, conn.transaction():
        for status in statuses:
            outcome = "unknown"
            if status.message_ref is not None:
                outcome = await receipts.record(
                    conn, channel="whatsapp", message_ref=status.message_ref,
                    platform_message_id=status.platform_message_id, status=status.status, error=status.error,
                    occurred_at=status.occurred_at, now=now)
            if outcome == "unknown":
                log.info("meta: WhatsApp %s status for %s, a message we did not send", status.status,
                         status.platform_message_id)


routes = [
    Route("/webhooks/meta", meta_verify, methods=["GET"]),
    Route("/webhooks/meta", meta_events, methods=["POST"]),
    Route("/webhooks/line", line_events, methods=["POST"]),
    Route("/webhooks/telegram", telegram_events, methods=["POST"]),
]
