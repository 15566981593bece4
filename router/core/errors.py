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


class LengthRequired(RouterError):
    status = 411
    code = "length_required"


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


class StorageFailed(RouterError):
    """Our own disk refused a write (full, read-only, missing): nothing the sender did, and not a
    database outage either. HTTP 507, SMTP 451 "local error in processing"."""

    status = 507
    code = "storage_failed"


class ServiceUnavailable(RouterError):
    """The database is unreachable: the sender should retry (HTTP 503 + Retry-After, SMTP 451)."""

    status = 503
    code = "unavailable"


DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,  # client side: "connection is closed", "pool is closing", ConnectionDoesNotExistError
    asyncpg.InternalClientError,  # client side: a connection torn down mid-statement (seen at shutdown), a stale
    # statement cache after a concurrent migration (OutdatedSchemaCacheError), a protocol state error
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,  # a server-side statement_timeout (an external server's DBA) or pg_cancel_backend
    asyncpg.LockNotAvailableError,  # a server-side lock_timeout
    TimeoutError,  # our own client-side bounds (router.db): a database that does not answer in time
)
"""Exceptions that mean "the database cannot do this right now" (down, restarting, or a deadlock /
serialization conflict it resolved by aborting us): the sender should retry, the request is fine.
`OSError` is here because connecting to a stopped server raises plain ones (a missing socket file,
asyncio's "Multiple exceptions" when every address refuses); our own disk writes never reach the
edges as `OSError`: `store.attachments` turns them into `StorageFailed`."""

BAD_VALUE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
    UnicodeEncodeError,
)
"""A value PostgreSQL cannot take (out-of-range number, NUL, invalid Unicode): the request is bad.
Inputs are validated at the edges; this is the backstop that keeps such a request from a 500."""
