"""The services one running app shares between its HTTP handlers and its background workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from agents import store as agent_store
from router.config import Config
from router.core.actions import Context
from router.core.clock import Clock
from router.core.errors import ServiceUnavailable
from router.core.pipeline import Pipeline
from router.live import LiveHub
from router.metrics import Metrics
from router.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request handler or worker needs, built once per app."""

    config: Config
    clock: Clock
    pipeline: Pipeline
    metrics: Metrics = field(default_factory=Metrics)
    form_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(rate_per_minute=10, burst=5))
    page_limiters: dict[str, RateLimiter] = field(default_factory=dict)  # per public page (`http.limit_client`)
    pool: asyncpg.Pool | None = None
    live: LiveHub = field(default_factory=LiveHub)
    config_listeners: list[Callable[[Config], None]] = field(default_factory=list)

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ServiceUnavailable("the database is not connected yet")
        return self.pool

    def actions(self) -> Context:
        """What `router.core.actions` need, with the configuration in force right now."""
        return Context(self.require_pool(), self.config, self.clock)

    async def apply_config(self, config: Config) -> None:
        """Switch to a new configuration while serving: agents and teams are synced, new messages
        use the new topics, policies and templates, and workers holding config are told."""
        async with self.require_pool().acquire() as conn:
            await agent_store.sync_from_config(conn, config.teams, config.agents)
        self.config = config
        self.pipeline = Pipeline(config, self.clock)
        for listener in self.config_listeners:
            listener(config)
        log.info("configuration applied from %s", config.source)
