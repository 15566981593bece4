"""The composition root of a running service: services, the lifespan that owns the pool and the
background workers, and SIGHUP reloads. What HTTP looks like is `router.web.app`'s business."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import asyncpg
from starlette.applications import Starlette

from agents import store as agent_store
from router import db
from router.config import Config, ConfigError
from router.core.clock import Clock, system_clock
from router.core.pipeline import Pipeline
from router.services import Services
from router.web.app import build_app

log = logging.getLogger(__name__)

Worker = Callable[[Services], Coroutine[Any, Any, None]]


def create_app(config: Config, *, dsn: str | None = None, pool: asyncpg.Pool | None = None,
               clock: Clock = system_clock, workers: tuple[Worker, ...] = (),
               reload_config: Callable[[], Config] | None = None) -> Starlette:
    """Build the app. Give `pool` (tests) or `dsn` (serve): with a DSN the lifespan creates the pool,
    migrates and applies the config's agents and teams. With `reload_config`, SIGHUP reloads it."""
    svc = Services(config=config, clock=clock, pipeline=Pipeline(config, clock), pool=pool)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = None
        if svc.pool is None:
            assert dsn is not None, "create_app needs a pool or a dsn"
            owned = svc.pool = await db.create_pool(dsn)
            async with owned.acquire() as conn:
                await db.migrate(conn)
                await agent_store.sync_from_config(conn, config.teams, config.agents)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(svc.live.running(svc.pool, svc.clock))
            for worker in workers:
                await stack.enter_async_context(_running(worker, svc))
            if reload_config is not None:
                stack.enter_context(_reload_on_sighup(svc, reload_config))
            yield
        if owned is not None:
            await owned.close()

    return build_app(svc, lifespan)


@contextlib.asynccontextmanager
async def _running(worker: Worker, svc: Services) -> AsyncIterator[None]:
    """Run a background worker for the app's lifetime; cancel it on shutdown."""
    task = asyncio.create_task(worker(svc), name=getattr(worker, "__name__", "worker"))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def _reload_on_sighup(svc: Services, reload_config: Callable[[], Config]) -> Iterator[None]:
    """SIGHUP: read the config file again and apply it; a broken file is logged and ignored, so a
    typo never takes the service down."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    one_at_a_time = asyncio.Lock()  # two quick SIGHUPs apply in order; the last file read wins

    async def reload() -> None:
        async with one_at_a_time:
            try:
                config = reload_config()
            except ConfigError as exc:
                log.error("SIGHUP: configuration not applied:\n%s", "\n".join(exc.problems))
                return
            try:
                await svc.apply_config(config)
            except Exception:
                log.exception("SIGHUP: configuration could not be applied")

    def on_sighup() -> None:
        task = loop.create_task(reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in pending:
            task.cancel()
