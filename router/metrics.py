"""Prometheus metrics: counters updated in-process, gauges read from the database at scrape time."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """One registry per app, so tests and several apps in one process never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter("router_messages_ingested_total", "Inbound messages stored",
                                ["channel", "duplicate"], registry=self.registry)
        self.rejected = Counter("router_messages_rejected_total", "Inbound messages refused",
                                ["channel", "reason"], registry=self.registry)
        self.ingest_seconds = Histogram("router_ingest_seconds", "Ingest pipeline latency",
                                        registry=self.registry,
                                        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.tickets = Gauge("router_tickets", "Tickets by status", ["status"], registry=self.registry)
        self.outbox = Gauge("router_outbox_items", "Outbox items by status", ["status"], registry=self.registry)
        self.outbox_failures = Counter("router_outbox_failures_total", "Failed delivery attempts",
                                       ["channel"], registry=self.registry)
        self.outbox_sent = Counter("router_outbox_sent_total", "Delivered outbound items",
                                   ["channel"], registry=self.registry)
        self.sla_events = Counter("router_sla_events_total", "SLA warnings and breaches recorded",
                                  ["target", "kind"], registry=self.registry)

    def delivered(self, channel: str) -> None:
        self.outbox_sent.labels(channel).inc()

    def failed(self, channel: str) -> None:
        self.outbox_failures.labels(channel).inc()

    async def render(self, pool: asyncpg.Pool) -> bytes:
        async with pool.acquire() as conn:
            for status in ("open", "pending", "solved", "closed"):
                self.tickets.labels(status).set(0)
            for row in await conn.fetch("SELECT status, count(*) AS n FROM tickets GROUP BY status"):
                self.tickets.labels(row["status"]).set(row["n"])
            for status in ("pending", "sent", "dead"):
                self.outbox.labels(status).set(0)
            for row in await conn.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status"):
                self.outbox.labels(row["status"]).set(row["n"])
        return generate_latest(self.registry)
