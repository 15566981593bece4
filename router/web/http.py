"""HTTP edge helpers: JSON problem bodies, bounded body reading, ids, bearer tokens, client addresses."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from router.core.errors import InvalidInput, MalformedBody, PayloadTooLarge, RouterError
from router.core.inbound import json_object
from router.ratelimit import RateLimiter

if TYPE_CHECKING:
    from router.services import Services

DEFAULT_MAX_JSON_BYTES = 1024 * 1024


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def error_response(exc: RouterError) -> JSONResponse:
    """The problem for `exc`; `Retry-After` and `WWW-Authenticate` are added by `SecurityHeaders`."""
    return problem(exc.status, exc.code, exc.detail)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing early (413) when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise MalformedBody("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int = DEFAULT_MAX_JSON_BYTES) -> dict[str, Any]:
    """The body as a JSON object, else a 400 `malformed_body` (nesting too deep for the parser included:
    1 MiB of `[` is within the size limit and would otherwise end in a RecursionError, a 500)."""
    return json_object(await read_body(request, limit))


MAX_DB_ID = 2**63 - 1


def db_id(value: object, name: str) -> int:
    """A positive 64-bit id (bigint), or a 422 naming the field."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DB_ID:
        raise InvalidInput(f"`{name}` must be a positive id")
    return value


def client_address(request: Request) -> str:
    """The peer's address, or the client a trusted proxy forwarded for (uvicorn believes
    `X-Forwarded-For` only from `ROUTER_TRUSTED_PROXIES`, so a client cannot choose its address)."""
    return request.client.host if request.client else "unknown"


def client_address_is_loopback(request: Request) -> bool:
    """Whether the client is this host (`::ffff:127.0.0.1` too, as a dual-stack listener sees it)."""
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def services(request: Request) -> Services:
    """The app's shared services (set by the app factory)."""
    found: Services = request.app.state.services
    return found


def limit_client(request: Request, page: str, *, rate_per_minute: float, burst: int) -> None:
    """Per-address rate limit of a public page (the survey, the verify link), one limiter per page
    and app; raises `TooManyRequests` past it."""
    limiters = services(request).page_limiters
    if page not in limiters:
        limiters[page] = RateLimiter(rate_per_minute=rate_per_minute, burst=burst)
    limiters[page].check(client_address(request))


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
