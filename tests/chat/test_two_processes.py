"""Two `router serve` processes on one database: a visitor connected to one gets, at once, what is
written through the other (an agent's reply, their own message from a second tab), numbered once."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.chat.conftest import Visitor
from tests.e2e.helpers import API_TOKEN, Serve


@contextlib.contextmanager
def two_servers(base: Path, database: str) -> Iterator[tuple[Serve, Serve]]:
    servers = [Serve(base, database_url=database, name=name) for name in ("serve-a", "serve-b")]
    try:
        for serve in servers:
            serve.env["ROUTER_SECRET_KEY"] = "one key for every process of the service"
            serve.start()
        for serve in servers:
            serve.wait_ready()
        yield servers[0], servers[1]
    finally:
        for serve in servers:
            serve.close()


async def test_what_one_process_writes_reaches_a_widget_on_the_other(tmp_path: Path, database: str) -> None:
    with two_servers(tmp_path, database) as (a, b):
        on_b = Visitor(f"ws://127.0.0.1:{b.http_port}/chat/ws")
        await on_b.open()
        on_a = Visitor(f"ws://127.0.0.1:{a.http_port}/chat/ws", token=on_b.token)  # a second tab, other process
        await on_a.open()
        await on_a.send({"type": "message", "id": "second-tab-1", "text": "Written in the other tab"})
        ref = (await on_a.until(lambda f: f["type"] == "sent"))["ref"]
        mine = await on_b.until(lambda f: f["type"] == "entry" and f["from"] == "customer")
        assert (mine["seq"], mine["id"]) == (1, "second-tab-1")

        async with httpx.AsyncClient(base_url=a.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
            delays = []
            for number in range(5):
                started = time.monotonic()
                text = f"Answered through A {number}"
                replied = await api.post(f"/api/v1/tickets/{ref}/replies", json={"text": text})
                assert replied.status_code == 201, replied.text
                await on_b.until(lambda f, t=text: f["type"] == "entry" and f["text"] == t)
                delays.append(time.monotonic() - started)
            assert statistics.median(delays) < 0.3, f"pushed at the commit, not found by the 1 s poll: {delays}"
        while on_a.last < on_b.last:
            await on_a.next()
        assert [e["seq"] for e in on_b.entries] == list(range(1, len(on_b.entries) + 1))
        assert [e["seq"] for e in on_a.entries] == [e["seq"] for e in on_b.entries]
        await on_a.close()
        await on_b.close()
