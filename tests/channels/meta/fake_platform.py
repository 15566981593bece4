"""A local HTTP server standing in for a platform's API (Graph API, LINE, Telegram): it records every
request and answers from a script, so senders are tested over real sockets through their base URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.conftest import free_port


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakePlatform:
    url: str = ""
    ok: tuple[int, Any, dict[str, str]] = (200, {}, {})
    script: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Queue the answer to the next request (after the queue: `ok`)."""
        self.script.append((status, body, headers or {}))

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(Seen(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                              json.loads(raw) if raw else None))
        status, body, headers = self.script.pop(0) if self.script else self.ok
        return web.json_response(body, status=status, headers=headers)


@asynccontextmanager
async def fake_platform(ok: Any) -> AsyncIterator[FakePlatform]:
    """A platform answering `200 ok` unless told otherwise."""
    platform = FakePlatform(ok=(200, ok, {}))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", platform.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    platform.url = f"http://127.0.0.1:{port}"
    try:
        yield platform
    finally:
        await runner.cleanup()
