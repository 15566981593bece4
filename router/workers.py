"""The background workers `router serve` runs next to HTTP: outbox delivery, SLA monitor, queues."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from channels.email.intake import IntakeHandler, start_server
from router.app import Worker
from router.config import Config
from router.core import actions
from router.core.errors import DATABASE_DOWN_ERRORS
from router.core.inbound import InboundMessage, IngestResult
from router.core.outbound import Dispatcher, Sender
from router.core.pipeline import Pipeline
from router.core.refs import REF_PREFIX
from router.core.store import attachments
from router.metrics import Metrics
from router.services import Services
from sla import monitor

log = logging.getLogger(__name__)

QUEUE_DRAIN_SECONDS = 10.0
SLA_SCAN_SECONDS = 5.0


def senders_for(config: Config) -> dict[str, Sender]:
    """One sender per channel we can deliver on with this configuration."""
    senders: dict[str, Sender] = {}
    if config.settings.smtp_relay:
        from channels.email.send import EmailSender

        senders["email"] = EmailSender(config)
    return senders


async def forever(name: str, step: Callable[[], Awaitable[int]], idle_seconds: float) -> None:
    """Run `step` over and over; rest `idle_seconds` when it found nothing to do. A failing step
    is logged and retried later: a background worker must never die quietly."""
    while True:
        try:
            done = await step()
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("%s: database unavailable (%r); retrying", name, exc)
            done = 0
        except Exception:
            log.exception("%s: step failed; retrying", name)
            done = 0
        if not done:
            await asyncio.sleep(idle_seconds)


async def outbox_worker(svc: Services) -> None:
    senders = senders_for(svc.config)
    if not senders:
        log.info("outbox: no outbound channel configured; items stay queued")
        return
    dispatcher = Dispatcher(svc.require_pool(), senders, svc.clock, svc.metrics)
    svc.config_listeners.append(lambda config: setattr(dispatcher, "senders", senders_for(config)))
    await forever("outbox", dispatcher.run_once, 1.0)


async def sla_worker(svc: Services) -> None:
    async def step() -> int:
        alerts = bool(svc.config.settings.slack_bot_token)
        fired = await monitor.scan_once(svc.require_pool(), svc.clock(), alerts=alerts, ref_prefix=REF_PREFIX)
        for event in fired:
            svc.metrics.sla_events.labels(event.target, event.kind).inc()
        return len(fired) >= monitor.SCAN_LIMIT  # a full batch: more may be waiting, scan again at once

    await forever("SLA monitor", step, SLA_SCAN_SECONDS)


async def queue_worker(svc: Services) -> None:
    """Assignments normally happen on the triggering change; this sweep catches the rest (a slot
    freed by another process, a config change, a failed attempt)."""
    async def step() -> int:
        await actions.drain_queue(svc.require_pool(), svc.clock())
        return 0

    await forever("queue sweep", step, QUEUE_DRAIN_SECONDS)


async def smtp_worker(svc: Services) -> None:
    settings = svc.config.settings
    handler = smtp_intake_handler(svc.config, svc.require_pool(), lambda: svc.pipeline, svc.metrics)
    svc.config_listeners.append(handler.reconfigure)
    server = await start_server(handler, settings.smtp_host, settings.smtp_port,
                                hostname=svc.config.service.support_address.partition("@")[2])
    log.info("SMTP intake listening on %s:%s", settings.smtp_host, settings.smtp_port)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await server.wait_closed()


def smtp_intake_handler(config: Config, pool: asyncpg.Pool, pipeline: Callable[[], Pipeline],
                        metrics: Metrics | None = None) -> IntakeHandler:
    """The SMTP intake wired to the pipeline: messages go through `pipeline()` (read per message,
    so a reloaded configuration applies), raw mail is kept in the data dir, and with `metrics`
    every stored message and every refusal is counted like any other channel's."""
    async def ingest(message: InboundMessage) -> IngestResult:
        started = time.perf_counter()
        result = await pipeline().ingest(pool, message)
        if metrics is not None:
            metrics.record_ingest(message.channel, result, time.perf_counter() - started)
        return result

    def refused(code: str) -> None:
        if metrics is not None:
            metrics.rejected.labels("email", code).inc()

    handler: IntakeHandler

    async def store_raw(raw: bytes) -> str:
        return await attachments.store_raw(handler.config.settings.data_dir, raw)

    handler = IntakeHandler(config, ingest, store_raw, refused=refused)
    return handler


def default_workers(config: Config) -> tuple[Worker, ...]:
    return (smtp_worker, outbox_worker, sla_worker, queue_worker)
