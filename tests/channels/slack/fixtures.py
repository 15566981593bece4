"""Fixtures for the Slack tests: the fake Slack server, a config with Slack on and a fast SLA policy,
the app over it, and `SlackRig` to run the monitor, the Slack delivery and its upkeep by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import asyncpg
import httpx
import pytest

from channels.slack.api import SlackApi
from router.app import create_app
from router.config import Config, demo_config_text, parse_config
from router.core.alerts import AlertDelivery, Upkeep
from router.core.clock import ManualClock
from router.core.outbound import Dispatcher
from router.core.refs import REF_PREFIX
from router.metrics import Metrics
from sla import monitor
from tests.channels.slack.fake_slack import SIGNING_SECRET, TOKEN, FakeSlack

FAST_POLICY = """
[[sla_policies]]
name = "fast"
first_response = "100s"
next_response = "100s"
calendar = "24x7"
warn_at = [0.5, 0.9]
"""
PUBLIC_URL = "http://router.test"


def slack_config_text(slack: str = "[slack]\ndigest_time = false\n", policy: str = FAST_POLICY) -> str:
    """The demo config with `policy` first and its `[slack]` section replaced (no digest by default)."""
    demo, _, _ = demo_config_text().partition("\n[slack]\n")
    return demo.replace("[[sla_policies]]", policy + "\n[[sla_policies]]", 1) + "\n" + slack


def with_slack(config: Config, fake: FakeSlack, **settings: object) -> Config:
    slack: dict[str, object] = {"slack_bot_token": TOKEN, "slack_signing_secret": SIGNING_SECRET,
                                "slack_alert_channel": "#alerts", "slack_api_url": fake.api_url,
                                "public_url": PUBLIC_URL}
    return replace(config, settings=replace(config.settings, **{**slack, **settings}))


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    server = FakeSlack()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def slack_config(settings, fake_slack: FakeSlack) -> Config:
    return with_slack(parse_config(slack_config_text(), settings), fake_slack)


@pytest.fixture
async def slack_client(slack_config: Config, pool: asyncpg.Pool,
                       clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(slack_config, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@dataclass
class SlackRig:
    """The background work of `router serve`, run step by step on the test's clock."""

    pool: asyncpg.Pool
    config: Config
    clock: ManualClock
    fake: FakeSlack
    metrics: Metrics

    def delivery(self) -> AlertDelivery:
        settings = self.config.settings
        assert settings.slack_bot_token
        return AlertDelivery(self.pool, SlackApi(settings.slack_bot_token, settings.slack_api_url), self.clock,
                             lambda: self.config)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.pool, {"slack": self.delivery()}, self.clock, self.metrics, self.metrics.dead)

    async def scan(self, instances: int = 1) -> list[monitor.SlaEvent]:
        """`instances` monitors scanning at once, as several `router serve` processes do."""
        async def one() -> list[monitor.SlaEvent]:
            return await monitor.scan_once(self.pool, self.clock(), alerts=True, ref_prefix=REF_PREFIX,
                                           rules=self.config.sla)

        return [event for found in await asyncio.gather(*(one() for _ in range(instances))) for event in found]

    async def deliver(self, dispatchers: int = 1) -> int:
        """Deliver what is due, with `dispatchers` processes at once, until nothing is left now."""
        delivered = 0
        for _ in range(10):
            batch = await asyncio.gather(*(self.dispatcher().run_once() for _ in range(dispatchers)))
            delivered += sum(batch)
            if not sum(batch):
                return delivered
        return delivered

    async def upkeep(self) -> int:
        return await Upkeep(self.pool, self.clock, lambda: self.config).run_once()

    async def outbox(self) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch("SELECT kind, status, attempts, next_attempt_at, last_error FROM outbox"
                                    " WHERE channel = 'slack' ORDER BY id")


@pytest.fixture
def rig(pool, slack_config, clock, fake_slack) -> SlackRig:
    return SlackRig(pool, slack_config, clock, fake_slack, Metrics())
