"""The ASGI app factory: routes, error mapping, and the lifespan that owns the pool and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agents import store as agent_store
from router import db
from router.web import intake
from router.web.api import tickets as api
from router.core.clock import Clock, system_clock
from router.config import Config, ConfigError
from router.core.errors import BAD_VALUE_ERRORS, DATABASE_DOWN_ERRORS, InvalidInput, RouterError, ServiceUnavailable
from router.web.http import RateLimiter, error_response, problem
from router.metrics import Metrics
from router.core.pipeline import Pipeline

log = logging.getLogger(__name__)

Worker = Callable[["Services"], Awaitable[None]]


@dataclass
class Services:
    """Everything a request handler or worker needs, built once per app."""

    config: Config
    clock: Clock
    pipeline: Pipeline
    metrics: Metrics = field(default_factory=Metrics)
    form_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(rate_per_minute=10, burst=5))
    pool: asyncpg.Pool | None = None
    config_listeners: list[Callable[[Config], None]] = field(default_factory=list)

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ServiceUnavailable("the database is not connected yet")
        return self.pool

    async def apply_config(self, config: Config) -> None:
        """Switch to a new configuration while serving: agents and teams are synced, new messages
        use the new topics, policies and templates, and workers holding config are told."""
        async with self.require_pool().acquire() as conn:
            await agent_store.sync_from_config(conn, config)
        self.config = config
        self.pipeline = Pipeline(config, self.clock)
        for listener in self.config_listeners:
            listener(config)
        log.info("configuration applied from %s", config.source)


def services(request: Request) -> Services:
    return request.app.state.services


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    pool = services(request).require_pool()
    async with pool.acquire(timeout=3) as conn:
        await conn.fetchval("SELECT 1")
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    svc = services(request)
    body = await svc.metrics.render(svc.require_pool())
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")


async def _router_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RouterError)
    return error_response(exc)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable during %s %s: %r", request.method, request.url.path, exc)
    return error_response(ServiceUnavailable("the database is unavailable; retry later"))


async def _bad_value(request: Request, exc: Exception) -> Response:
    log.info("refused a value the database cannot store in %s %s: %r", request.method, request.url.path, exc)
    return error_response(InvalidInput("a value is out of range or contains characters that cannot be stored"))


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    detail = getattr(exc, "detail", "not found")
    return problem(status, "not_found" if status == 404 else "http_error", str(detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


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
                await agent_store.sync_from_config(conn, config)
        async with contextlib.AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(_running(worker, svc))
            if reload_config is not None:
                stack.enter_context(_reload_on_sighup(svc, reload_config))
            yield
        if owned is not None:
            await owned.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *intake.routes,
        *api.routes,
    ]
    exception_handlers: dict[object, Callable] = {
        RouterError: _router_error,
        404: _not_found,
        405: _not_found,
        Exception: _unexpected,
    }
    for error in DATABASE_DOWN_ERRORS:
        exception_handlers[error] = _database_down
    for error in BAD_VALUE_ERRORS:
        exception_handlers[error] = _bad_value
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[Middleware(SessionMiddleware, secret_key=config.settings.secret_key or "dev-only",
                               session_cookie="router_session", same_site="lax", https_only=False)],
    )
    app.state.services = svc
    return app


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
    pending: set[asyncio.Task] = set()
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
