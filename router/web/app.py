"""The HTTP edge's app: routes, the mapping of errors to JSON problems, and middleware.

`router.app` builds the services and the lifespan; this module only says how HTTP looks.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.core.errors import (
    BAD_VALUE_ERRORS,
    DATABASE_DOWN_ERRORS,
    Forbidden,
    InvalidInput,
    RouterError,
    ServiceUnavailable,
    Unauthorized,
)
from router.services import Services
from router.web import api, chat, csat, help, inbox, intake, openapi, reports, slack, verify, webhooks
from router.web.http import bearer_token, client_address_is_loopback, error_response, problem, services
from router.web.inbox.render import render
from router.web.inbox.session import SignInRequired, login_url, signed_in

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
OWN_HEADERS_ALLOWED = frozenset({"Content-Security-Policy", "X-Frame-Options"})
"""Headers a response may set for itself: the sandboxed frame that shows an email's HTML has its own,
stricter policy and must be framable by our pages (`frame-ancestors 'self'`)."""
RETRY_AFTER_SECONDS = {429: 60, 503: 5}
"""`Retry-After` by status: the form limiter refills within a minute; the database is retried soon."""


class SecurityHeaders:
    """Puts `SECURITY_HEADERS` on every HTTP response, `WWW-Authenticate: Bearer` on every 401 and
    `Retry-After` on every 429 and 503, whichever handler, error mapping or 404 wrote it.

    Pure ASGI, editing only the `http.response.start` message: `BaseHTTPMiddleware` would buffer
    streamed responses. It wraps the whole stack (see `RouterApp`), so the 500s Starlette's
    `ServerErrorMiddleware` writes get the headers too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in OWN_HEADERS_ALLOWED or name.lower() not in headers:
                        headers[name] = value
                status = message["status"]
                if status == 401 and "www-authenticate" not in headers:
                    headers["WWW-Authenticate"] = "Bearer"
                if status in RETRY_AFTER_SECONDS and "retry-after" not in headers:
                    headers["Retry-After"] = str(RETRY_AFTER_SECONDS[status])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RouterApp(Starlette):
    """Starlette with `SecurityHeaders` outside its `ServerErrorMiddleware`, which the `middleware`
    argument cannot reach."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    pool = services(request).require_pool()
    async with pool.acquire(timeout=3) as conn:
        await conn.fetchval("SELECT 1")
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus text, for `Bearer <ROUTER_METRICS_TOKEN>` or, without that token, loopback clients."""
    svc = services(request)
    expected = svc.config.settings.metrics_token
    if expected:
        token = bearer_token(request)
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("send `Authorization: Bearer <ROUTER_METRICS_TOKEN>`")
    elif not client_address_is_loopback(request):
        raise Forbidden("metrics answer loopback clients only; set ROUTER_METRICS_TOKEN to scrape from elsewhere")
    body = await svc.metrics.render(svc.require_pool())
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")


PAGE_PREFIXES = ("/inbox", "/admin", "/reports", "/login", "/logout", "/preferences")
"""Paths people read in a browser: their errors are pages, not JSON problems."""


def _is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PREFIXES)


async def _router_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RouterError)
    if isinstance(exc, SignInRequired):
        target = login_url(request) if request.method == "GET" else "/login"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if _is_page(request):
        agent = await signed_in(request) if exc.status != 503 else None
        return render(request, agent, "error.html", {"title": exc.code.replace("_", " ").capitalize(),
                                                     "detail": exc.detail}, status=exc.status)
    return error_response(exc)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable or too slow during %s %s: %r", request.method, request.url.path, exc)
    return error_response(ServiceUnavailable("the database is unavailable; retry later"))


async def _bad_value(request: Request, exc: Exception) -> Response:
    log.info("refused a value the database cannot store in %s %s: %r", request.method, request.url.path, exc)
    return error_response(InvalidInput("a value is out of range or contains characters that cannot be stored"))


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    detail = getattr(exc, "detail", "not found")
    return problem(status, "not_found" if status == 404 else "http_error", str(detail))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while sending its body (a closing tab's last presence ping): nothing was
    read, so nothing was done, and nobody is left to answer."""
    log.info("client left during %s %s before its body arrived", request.method, request.url.path)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


def over_capacity() -> ASGIApp:
    """What `router serve` answers a request beyond `ROUTER_HTTP_MAX_CONNECTIONS` without running it:
    a 503 problem like the others (`Retry-After`, security headers), closing the connection."""
    detail = "the server is at its connection limit; retry later"
    return SecurityHeaders(problem(503, ServiceUnavailable.code, detail, {"Connection": "close"}))


def build_app(svc: Services, lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]) -> Starlette:
    """The Starlette app serving `svc`. Signed links use the secret key, which must be set
    (`router serve` generates one into the data dir): never a fixed fallback key."""
    if not svc.config.settings.secret_key:
        raise ValueError("no secret key: set ROUTER_SECRET_KEY (router serve generates one into the data dir)")
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/metrics", metrics),
        *intake.routes,
        *webhooks.routes,
        *chat.routes,
        *slack.routes,
        *api.routes,
        *csat.routes,
        *verify.routes,
        *inbox.routes,
        *help.routes,
        *reports.routes,
    ]
    exception_handlers: dict[object, Callable] = {
        RouterError: _router_error,
        404: _not_found,
        405: _not_found,
        ClientDisconnect: _client_gone,
        Exception: _unexpected,
    }
    for error in DATABASE_DOWN_ERRORS:
        exception_handlers[error] = _database_down
    for error in BAD_VALUE_ERRORS:
        exception_handlers[error] = _bad_value
    app = RouterApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
    )
    app.state.services = svc
    return app
