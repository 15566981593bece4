"""The background workers `router serve` runs next to HTTP: outbox delivery, SLA monitor, queues, and
(with a Slack bot token) Slack alert delivery and upkeep."""

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
from router.core.alerts import AlertDelivery, Upkeep
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
"""The SLA monitor's longest sleep; it wakes earlier when a warning or breach falls due sooner."""
SLA_SCAN_MIN_SECONDS = 0.2
SLACK_IDLE_SECONDS = 1.0
SLACK_UPKEEP_SECONDS = 2.0

def senders_for(config: Config) -> dict[str, Sender]:
    """One sender per channel we can deliver on with this configuration."""
    senders: dict[str, Sender] = {}
    if config.settings.smtp_relay:
        from channels.email.send import EmailSender

        senders["email"] = EmailSender(config)
    if config.settings.telegram_bot_token:
        from channels.telegram.send import TelegramSender

        senders["telegram"] = TelegramSender(config.settings.telegram_api_url, config.settings.telegram_bot_token)
    if config.settings.line_channel_token:
        from channels.line.send import LineSender

        senders["line"] = LineSender(config.settings.line_api_url, config.settings.line_channel_token)
    if config.settings.meta_access_token:
        from channels.meta.send import CHANNELS, MetaSender

        meta = MetaSender(config.settings.meta_graph_url, config.settings.meta_access_token, config.whatsapp)
        senders.update(dict.fromkeys(CHANNELS, meta))
    return senders


async def forever(name: str, step: Callable[[], Awaitable[int]],
                  idle_seconds: float | Callable[[], Awaitable[float]]) -> None:
    """Run `step` over and over; rest `idle_seconds` (or as long as it says) when the step found
    nothing to do. A failing step is logged and retried later: a background worker must never die
    quietly."""
    while True:
        try:
            done = await step()
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("%s: database unavailable or too slow (%r); retrying", name, exc)
            done = 0
        except Exception:
            log.exception("%s: step failed; retrying", name)
            done = 0
        if not done:
            await asyncio.sleep(await _pause(name, idle_seconds) if callable(idle_seconds) else idle_seconds)


async def _pause(name: str, idle: Callable[[], Awaitable[float]]) -> float:
    try:
        return await idle()
    except Exception as exc:
        log.warning("%s: could not tell how long to rest (%r)", name, exc)
        return SLA_SCAN_SECONDS


async def outbox_worker(svc: Services) -> None:
    senders = senders_for(svc.config)
    if not senders:
        log.info("outbox: no outbound channel configured; items stay queued")
        return
    dispatcher = Dispatcher(svc.require_pool(), senders, svc.clock, svc.metrics, svc.metrics.dead)
    svc.config_listeners.append(lambda config: setattr(dispatcher, "senders", senders_for(config)))
    await forever("outbox", dispatcher.run_once, 1.0)


async def sla_worker(svc: Services) -> None:
    async def step() -> int:
        fired = await monitor.scan_once(svc.require_pool(), svc.clock(), alerts=svc.config.slack_enabled,
                                        ref_prefix=REF_PREFIX, rules=svc.config.sla)
        for event in fired:
            svc.metrics.sla_events.labels(event.target, event.kind).inc()
        return len(fired) >= monitor.SCAN_LIMIT  # a full batch: more may be waiting, scan again at once

    async def until_next_due() -> float:
        """Until the next warning or breach falls due, so each fires on time, not up to a scan late."""
        async with svc.require_pool().acquire() as conn:
            due = await monitor.next_due(conn)
        wait = (due - svc.clock()).total_seconds() if due is not None else SLA_SCAN_SECONDS
        return min(max(wait, SLA_SCAN_MIN_SECONDS), SLA_SCAN_SECONDS)

    await forever("SLA monitor", step, until_next_due)


async def slack_worker(svc: Services) -> None:
    """Slack alert delivery, apart from the other channels' outbox worker so a slow Slack never
    delays a customer's mail, and the upkeep that keeps cards true and posts digests."""
    if not svc.config.slack_enabled:
        log.info("Slack: no SLACK_BOT_TOKEN; alerts are off")
        return
    from channels.slack.api import SlackApi

    settings = svc.config.settings
    assert settings.slack_bot_token is not None
    port = SlackApi(settings.slack_bot_token, settings.slack_api_url)
    pool = svc.require_pool()
    delivery = AlertDelivery(pool, port, svc.clock, lambda: svc.config)
    dispatcher = Dispatcher(pool, {"slack": delivery}, svc.clock, svc.metrics, svc.metrics.dead)
    upkeep = Upkeep(pool, svc.clock, lambda: svc.config)
    async with asyncio.TaskGroup() as group:
        group.create_task(forever("Slack delivery", dispatcher.run_once, SLACK_IDLE_SECONDS))
        group.create_task(forever("Slack upkeep", upkeep.run_once, SLACK_UPKEEP_SECONDS))


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
                                hostname=svc.config.service.support_address.partition("@")[2],
                                reuse_port=settings.reuse_port)
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


async def csat_worker(svc: Services) -> None:
    """Satisfaction surveys once tickets have stayed solved (`router.core.csat`)."""
    from router.core.csat import IDLE_SECONDS, Scheduler

    scheduler = Scheduler(svc.require_pool(), svc.clock, lambda: svc.config)
    await forever("CSAT surveys", scheduler.run_once, IDLE_SECONDS)


def default_workers(config: Config) -> tuple[Worker, ...]:
    from router.web.chat_delivery import chat_worker  # chat delivery reads the database: see there

    return (smtp_worker, outbox_worker, sla_worker, queue_worker, slack_worker, csat_worker, chat_worker)
