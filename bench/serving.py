"""Helpers for benchmarks that run a real `router serve` in a subprocess."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def wait_until_ready(client: httpx.AsyncClient, process: Any, seconds: float = 60) -> None:
    """Poll `/readyz` until the server answers 200; fail when it exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.returncode is not None:
            raise RuntimeError("router serve did not become ready")
        await asyncio.sleep(0.2)
