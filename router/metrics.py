"""Prometheus metrics. A scrape costs the same with a thousand tickets or ten million: counters are
kept in process, and the gauges read from the database only rows of partial indexes (the team queues,
the outbox items not sent yet), each count stopped at a cap — never a count of a whole table, and no
scrape slower during a backlog (a relay down for a day leaves a million acks pending).

Under `router serve --workers N` the supervisor gives its processes one directory
(`PROMETHEUS_MULTIPROC_DIR`, prometheus_client's multiprocess mode): every process writes its counters
there and a scrape, whichever process the shared port hands it to, answers the sum over all of them,
those of processes that died included, so totals never step back. Separately run processes count
each for itself: scrape each, and sum in Prometheus (`sum(rate(router_messages_ingested_total[5m]))`)."""

from __future__ import annotations

import os

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from router.core.inbound import IngestResult

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by the supervisor) before prometheus_client is imported: the processes' shared counters."""
QUEUE_COUNT_CAP = 1000
"""The queue gauge counts at most this many tickets, so a scrape stays cheap during a backlog."""
OUTBOX_COUNT_CAP = 10_000
"""Each outbox gauge counts at most this many items: above the acks of a busy minute, so the gauge is
exact in normal work, and an outage's backlog reads as "at least this many" at a bounded cost."""

SCRAPE_SQL = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM tickets
                              WHERE assignee_id IS NULL AND status IN ('open', 'pending') LIMIT $1) AS q) AS queued,
       (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status = 'pending' LIMIT $2) AS p) AS pending,
       (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status = 'sending' LIMIT $2) AS s) AS sending,
       (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status = 'dead' LIMIT $2) AS d) AS dead
"""
"""What a scrape reads, in one round trip: each count reads only the rows of a partial index — the team
queues (`tickets_queue`), the outbox items waiting (`outbox_due`), being sent (`outbox_interrupted`)
or dead (`outbox_dead`) — never the solved tickets nor the sent items, which grow with every message,
and at most its cap of those (LIMIT inside the count), however long the backlog."""


class Metrics:
    """One registry per app, so tests and several apps in one process never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "router_messages_ingested_total",
            "Inbound messages stored by this process, by channel; duplicate=\"true\": a redelivery stored once before",
            ["channel", "duplicate"], registry=self.registry)
        self.rejected = Counter(
            "router_messages_rejected_total", "Inbound messages this process refused to store, by channel and reason",
            ["channel", "reason"], registry=self.registry)
        self.ingest_seconds = Histogram(
            "router_ingest_seconds", "Time to store, thread, classify, route and acknowledge one inbound message",
            registry=self.registry, buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.tickets_opened = Counter(
            "router_tickets_opened_total",
            "Tickets this process opened for inbound messages, by channel; how=\"new\" or \"reopened\" (a message "
            "after the ticket was solved, within the reopen window)",
            ["channel", "how"], registry=self.registry)
        self.queued = Gauge(
            "router_queued_tickets",
            f"Open or pending tickets waiting in a team queue for an agent, read at scrape time; counted up to "
            f"{QUEUE_COUNT_CAP}, so {QUEUE_COUNT_CAP} means at least that many",
            registry=self.registry, multiprocess_mode="mostrecent")
        self.outbox = Gauge(
            "router_outbox_items",
            "Outbox items not sent, read at scrape time: status=\"pending\" waits for its first or next attempt, "
            "\"sending\" is being delivered now (dead if its process stops mid-send), \"dead\" was given up on "
            f"and needs a person. Counted up to {OUTBOX_COUNT_CAP} each, so {OUTBOX_COUNT_CAP} means at least that "
            "many. Sent items: router_outbox_sent_total",
            ["status"], registry=self.registry, multiprocess_mode="mostrecent")
        self.outbox_failures = Counter(
            "router_outbox_failures_total", "Delivery attempts of this process that failed, by channel (retried later "
            "unless the item is dead)", ["channel"], registry=self.registry)
        self.outbox_dead = Counter(
            "router_outbox_dead_total", "Outbox items this process gave up on, by channel and reason (a platform's "
            "error code such as channel_not_found or invalid_auth; refused; gave_up after every attempt failed): "
            "they need a person", ["channel", "reason"], registry=self.registry)
        self.outbox_sent = Counter(
            "router_outbox_sent_total", "Outbound items this process delivered, by channel",
            ["channel"], registry=self.registry)
        self.sla_events = Counter(
            "router_sla_events_total", "SLA warnings and breaches this process recorded, by target and kind",
            ["target", "kind"], registry=self.registry)

    def record_ingest(self, channel: str, result: IngestResult, seconds: float) -> None:
        """One stored inbound message: what every intake (HTTP, SMTP) reports after the commit."""
        self.ingest_seconds.observe(seconds)
        self.ingested.labels(channel, str(result.duplicate).lower()).inc()
        if result.new_ticket:
            self.tickets_opened.labels(channel, "new").inc()
        elif result.reopened:
            self.tickets_opened.labels(channel, "reopened").inc()

    def delivered(self, channel: str) -> None:
        self.outbox_sent.labels(channel).inc()

    def dead(self, channel: str, reason: str) -> None:
        self.outbox_dead.labels(channel, reason).inc()

    def failed(self, channel: str) -> None:
        self.outbox_failures.labels(channel).inc()

    async def render(self, pool: asyncpg.Pool) -> bytes:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(SCRAPE_SQL, QUEUE_COUNT_CAP, OUTBOX_COUNT_CAP)
        self.queued.set(row["queued"])
        for status in ("pending", "sending", "dead"):
            self.outbox.labels(status).set(row[status])
        if os.environ.get(MULTIPROCESS_DIR):
            every_process = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_process)
            return generate_latest(every_process)
        return generate_latest(self.registry)
