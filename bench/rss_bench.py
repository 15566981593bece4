"""Memory of a real `router serve` process after traffic (SPEC §4: under 200 MB RSS)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import httpx
import psutil

from bench.serving import wait_until_ready

TOKEN = "rss-bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run(dsn: str, data_dir: str, messages: int = 1000, concurrency: int = 8) -> dict[str, float]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": data_dir, "ROUTER_HTTP_PORT": str(port),
           "ROUTER_SMTP_PORT": str(_free_port()), "ROUTER_API_TOKEN": TOKEN}
    env.pop("ROUTER_CONFIG", None)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "router.cli", "serve", env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            await wait_until_ready(client, process)
            numbers = iter(range(messages))

            async def sender() -> None:
                for i in numbers:
                    await client.post("/api/v1/messages", json={
                        "channel": "api", "sender": {"email": f"rss{i % 300}@example.com"},
                        "text": f"請求書について質問があります #{i}"})
                    if i % 10 == 0:
                        await client.get("/api/v1/tickets", params={"limit": "50"})

            await asyncio.gather(*(sender() for _ in range(concurrency)))
        rss_mb = psutil.Process(process.pid).memory_info().rss / 1024 / 1024
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
    return {"messages": messages, "rss_mb": round(rss_mb, 1)}
