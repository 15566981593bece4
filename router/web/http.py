"""HTTP edge helpers: JSON problem bodies, bounded body reading, client addresses, rate limits."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from router.core.errors import InvalidInput, MalformedBody, PayloadTooLarge, RateLimited, RouterError, ServiceUnavailable
from router.core.inbound import storable_text

DEFAULT_MAX_JSON_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 5


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def error_response(exc: RouterError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, ServiceUnavailable) else None
    return problem(exc.status, exc.code, exc.detail, headers)


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
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedBody("the body must be a JSON object")
    return data


MAX_DB_ID = 2**63 - 1


def db_id(value: object, name: str) -> int:
    """A positive 64-bit id (bigint), or a 422 naming the field."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DB_ID:
        raise InvalidInput(f"`{name}` must be a positive id")
    return value


def text_value(value: object, name: str, *, limit: int, required: bool = False) -> str | None:
    """A string PostgreSQL can store (no NUL, valid Unicode), at most `limit` characters."""
    if value is None or (required and isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"`{name}` is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    if len(value) > limit:
        raise InvalidInput(f"`{name}` is longer than {limit} characters")
    if not storable_text(value):
        raise InvalidInput(f"`{name}` contains NUL characters or invalid Unicode")
    return value


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """Token bucket per key (client address) for public endpoints; in memory, per process.

    Per-process is enough to blunt floods from one address; it is not a quota system.
    """

    def __init__(self, rate_per_minute: float, burst: int, max_keys: int = 10_000):
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited("too many requests from this address; try again in a minute")
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
