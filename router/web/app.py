"""The HTTP edge's app: routes, the mapping of errors to JSON problems, and middleware.

`router.app` builds the services and the lifespan; this module only says how HTTP looks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from router.core.errors import BAD_VALUE_ERRORS, DATABASE_DOWN_ERRORS, InvalidInput, RouterError, ServiceUnavailable
from router.services import Services
from router.web import api, intake
from router.web.http import error_response, problem, services

log = logging.getLogger(__name__)


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


def build_app(svc: Services, lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]) -> Starlette:
    """The Starlette app serving `svc`. Sessions are signed with the secret key, which must be set
    (`router serve` generates one into the data dir): never a fixed fallback key."""
    if not svc.config.settings.secret_key:
        raise ValueError("no secret key: set ROUTER_SECRET_KEY (router serve generates one into the data dir)")
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
        middleware=[Middleware(SessionMiddleware, secret_key=svc.config.settings.secret_key,
                               session_cookie="router_session", same_site="lax", https_only=False)],
    )
    app.state.services = svc
    return app
