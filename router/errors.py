"""Domain errors, mapped to HTTP/SMTP codes at the edges (router/http.py, channels/smtp.py)."""

from __future__ import annotations

import asyncpg


class RouterError(Exception):
    """Base of errors that carry a client-facing code and status."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(RouterError):
    status = 422
    code = "invalid_input"


class MalformedBody(RouterError):
    status = 400
    code = "malformed_body"


class PayloadTooLarge(RouterError):
    status = 413
    code = "payload_too_large"


class Unauthorized(RouterError):
    status = 401
    code = "unauthorized"


class Forbidden(RouterError):
    status = 403
    code = "forbidden"


class NotFound(RouterError):
    status = 404
    code = "not_found"


class Conflict(RouterError):
    status = 409
    code = "conflict"


class RateLimited(RouterError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(RouterError):
    """The database is unreachable: the sender should retry (HTTP 503 + Retry-After, SMTP 451)."""

    status = 503
    code = "unavailable"


DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    TimeoutError,
)
"""Exceptions that mean "the database is not available right now", not "the request is bad"."""
