"""The client address per-address limits key on, through a real uvicorn configured as `router serve`
configures it (`router.cli.server_config`): `X-Forwarded-For` is believed only from
`ROUTER_TRUSTED_PROXIES` (SPEC §3), so a client cannot dodge the web form's limit (burst 5) by
sending a new address with every request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
import uvicorn

from router.cli import server_config
from router.config import ConfigError, Settings, settings_from_env
from tests.conftest import free_port

BURST = 5


@contextlib.asynccontextmanager
async def serving(app, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """`app` behind a real uvicorn on a free port; a client talking to it over TCP from 127.0.0.1."""
    settings = replace(settings, http_host="127.0.0.1", http_port=free_port())
    server = uvicorn.Server(server_config(app, settings))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def post_form(client: httpx.AsyncClient, forwarded_for: str | None) -> int:
    """A form post the limiter counts (the empty message is refused after the limiter, with 422)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (await client.post("/support", json={"email": "x@example.net"}, headers=headers)).status_code


async def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(app, settings) -> None:
    assert settings.trusted_proxies == ()
    async with serving(app, settings) as client:
        statuses = [await post_form(client, f"198.51.100.{i}") for i in range(BURST + 2)]
    assert statuses[:BURST] == [422] * BURST and statuses[BURST:] == [429, 429], statuses


async def test_forwarded_for_names_the_client_when_the_proxy_is_trusted(app, settings) -> None:
    proxied = replace(settings, trusted_proxies=("127.0.0.1/32",))
    async with serving(app, proxied) as client:
        # Each forwarded client has its own bucket ...
        assert [await post_form(client, f"198.51.100.{i}") for i in range(BURST + 2)] == [422] * (BURST + 2)
        # ... and is limited, whatever it puts before the address the proxy appended.
        statuses = [await post_form(client, f"203.0.113.{i}, 192.0.2.7") for i in range(BURST + 2)]
        assert statuses[:BURST] == [422] * BURST and statuses[BURST:] == [429, 429], statuses
        # The proxy's own requests (no header) are still the proxy's.
        assert [await post_form(client, None) for _ in range(BURST + 1)][-1] == 429


def test_trusted_proxies_come_from_the_environment() -> None:
    assert settings_from_env({}).trusted_proxies == ()
    assert settings_from_env({"ROUTER_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8 ,::1"}).trusted_proxies == (
        "127.0.0.1/32", "10.0.0.0/8", "::1/128")
    with pytest.raises(ConfigError, match="ROUTER_TRUSTED_PROXIES"):
        settings_from_env({"ROUTER_TRUSTED_PROXIES": "proxy.internal"})
