"""A real uvicorn server on a real port over the test database, and a chat client speaking the widget's
protocol with the `websockets` library, as the widget does in a browser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from router.app import create_app
from router.cli import server_config
from router.config import ChatConfig, Config
from router.core.clock import ManualClock
from tests.conftest import API_TOKEN, free_port

FRAME_SECONDS = 10.0


@dataclass
class Served:
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/chat/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(config: Config, pool: asyncpg.Pool, clock: ManualClock, port: int | None = None) -> Served:
    app = create_app(config, pool=pool, clock=clock)
    port = port or free_port()
    # `router serve`'s own uvicorn settings (bounded connections, the WebSocket frame bound).
    server = uvicorn.Server(server_config(app, replace(config.settings, http_host="127.0.0.1", http_port=port)))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return Served(port, server, task)


@pytest.fixture
def chat_config(config: Config) -> Config:
    return config


Serving = Callable[..., Awaitable[Served]]


@pytest.fixture
async def start(pool: asyncpg.Pool, clock: ManualClock, config: Config) -> AsyncIterator[Serving]:
    """Starts servers (with `[chat]` overrides) and stops them after the test."""
    started: list[Served] = []

    async def starting(port: int | None = None, **chat: Any) -> Served:
        served = await serve(replace(config, chat=replace(ChatConfig(), **chat)), pool, clock, port)
        started.append(served)
        return served

    yield starting
    for served in started:
        if not served.task.done():
            await served.stop()


@dataclass
class Visitor:
    """A widget: its token, the last entry number seen, and every frame it received."""

    url: str
    token: str | None = None
    last: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: ClientConnection | None = None

    async def open(self, **headers: str) -> dict[str, Any]:
        self.ws = await connect(self.url, additional_headers=headers or None)
        await self.ws.send(json.dumps({"type": "hello", "token": self.token, "after": self.last, "lang": "en"}))
        welcome = await self.next()
        assert welcome["type"] == "welcome", welcome
        self.token = welcome["token"]
        return welcome

    async def next(self, seconds: float = FRAME_SECONDS) -> dict[str, Any]:
        assert self.ws is not None
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), seconds))
        self.frames.append(frame)
        if frame["type"] == "entry":
            assert frame["seq"] > self.last, f"entry {frame['seq']} after {self.last}: shown twice or out of order"
            self.last = frame["seq"]
            self.entries.append(frame)
        return frame

    async def until(self, matches: Callable[[dict[str, Any]], bool], seconds: float = FRAME_SECONDS) -> dict[str, Any]:
        while True:
            frame = await self.next(seconds)
            if matches(frame):
                return frame

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def drop(self) -> None:
        """The network goes away: no close frame, the server finds out by itself."""
        assert self.ws is not None
        self.ws.transport.abort()
        self.ws = None

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


def api(served: Served, token: str = API_TOKEN) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=served.http_url, timeout=30, headers={"Authorization": f"Bearer {token}"})
