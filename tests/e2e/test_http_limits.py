"""HTTP limits of a real `router serve` over real sockets: connections that never finish their request
head are closed within `ROUTER_HTTP_HEADER_TIMEOUT_SECONDS`, requests beyond
`ROUTER_HTTP_MAX_CONNECTIONS` get 503, oversized heads 431, and JSON nested deeper than the parser
goes is a 400 `malformed_body` on every endpoint that reads JSON (not a RecursionError and a 500)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from router.config import ConfigError, settings_from_env
from tests.conftest import API_TOKEN, TEMPLATE_DB, dsn_for, free_port

ROUTER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "router"
HEADER_TIMEOUT = 2.0
MAX_CONNECTIONS = 3
DEPTH = 10_000
DEEP_BODIES = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
}


class Served:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log

    def log_tail(self) -> str:
        return "--- router serve log ---\n" + self.log.read_text(errors="replace")[-4000:]

    async def connect(self, first_bytes: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if first_bytes:
            writer.write(first_bytes)
            await writer.drain()
        return reader, writer

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a GET on a new connection, which is then closed."""
        request = f"GET {path} HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n"
        reader, writer = await self.connect(request.encode())
        try:
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        return int(status_line.split()[1]), headers, body

    async def status_of(self, path: str) -> int:
        return (await self.get(path))[0]


@pytest.fixture(scope="module")
async def served(pg_server: str, template_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """`router serve` on its own copy of the migrated test database, with short HTTP limits."""
    name = "http_limits"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await admin.close()
    base = tmp_path_factory.mktemp("http-limits")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_") and k != "DATABASE_URL"}
    served = Served(free_port(), base / "serve.log")
    env.update(DATABASE_URL=dsn_for(pg_server, name), ROUTER_DATA_DIR=str(base / "var"),
               ROUTER_HTTP_PORT=str(served.port), ROUTER_SMTP_PORT=str(free_port()), ROUTER_API_TOKEN=API_TOKEN,
               ROUTER_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
               ROUTER_HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS))
    with served.log.open("w") as log:
        process = await asyncio.create_subprocess_exec(str(ROUTER), "serve", env=env, stdout=log,
                                                       stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        async with asyncio.timeout(60):
            while True:
                assert process.returncode is None, f"router serve exited\n{served.log_tail()}"
                with contextlib.suppress(OSError, IndexError, ValueError):
                    if await served.status_of("/readyz") == 200:
                        break
                await asyncio.sleep(0.2)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


async def seconds_until_closed(served: Served, reader: asyncio.StreamReader) -> float:
    """How long until the server closes the connection (it must within the header timeout)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(HEADER_TIMEOUT + 3):
            await reader.read()
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {HEADER_TIMEOUT + 3} s\n{served.log_tail()}")
    return loop.time() - started


async def test_a_half_sent_request_is_closed_within_the_header_timeout(served) -> None:
    silent, silent_writer = await served.connect()
    half, half_writer = await served.connect(b"GET /heal")
    try:
        waits = await asyncio.gather(seconds_until_closed(served, silent), seconds_until_closed(served, half))
    finally:
        silent_writer.close()
        half_writer.close()
    for waited in waits:
        assert HEADER_TIMEOUT - 0.5 <= waited <= HEADER_TIMEOUT + 1.5, waits
    assert await served.status_of("/healthz") == 200


async def test_the_header_timeout_spares_kept_alive_connections_between_requests(served) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n"
    reader, writer = await served.connect()
    try:
        for _ in range(2):
            for part in (request[:10], request[10:]):  # a head sent in two parts, within the timeout
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(HEADER_TIMEOUT / 4)
            async with asyncio.timeout(5):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200 ")
                await reader.readuntil(b"\r\n\r\n")
                assert await reader.readexactly(len(b'{"status":"ok"}')) == b'{"status":"ok"}'
            await asyncio.sleep(HEADER_TIMEOUT + 0.5)  # idle: longer than the header timeout, within keep-alive
    finally:
        writer.close()


async def test_a_request_beyond_max_connections_gets_503(served) -> None:
    held = [await served.connect(b"GET /healthz HT") for _ in range(MAX_CONNECTIONS - 1)]
    try:
        assert await served.status_of("/healthz") == 200  # the MAX_CONNECTIONS-th connection is served
        held.append(await served.connect(b"GET /healthz HT"))
        status, headers, body = await served.get("/healthz")
        assert status == 503 and json.loads(body)["error"] == "unavailable", body
        assert headers["retry-after"].isdigit() and headers["x-content-type-options"] == "nosniff", headers
        # The held connections are closed at their header timeout, and the server serves again.
        await asyncio.gather(*(seconds_until_closed(served, reader) for reader, _ in held))
        assert await served.status_of("/healthz") == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_a_request_head_over_64_kib_is_cut_off_at_once(served) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await served.connect(b"GET /healthz HTTP/1.1\r\nHost: router\r\nX-Padding: ")
    answer = b""
    try:
        with contextlib.suppress(ConnectionError):
            for _ in range(16):
                writer.write(b"a" * 8192)
                await writer.drain()
            async with asyncio.timeout(HEADER_TIMEOUT - 0.5):  # well before the header timeout
                answer = await reader.read()
    finally:
        writer.close()
    # A 431 when the client reads it before the close resets the connection; closed early either way.
    assert loop.time() - started < HEADER_TIMEOUT - 0.5
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]


def test_http_limits_come_from_the_environment() -> None:
    defaults = settings_from_env({})
    assert (defaults.http_max_connections, defaults.http_keepalive_seconds,
            defaults.http_header_timeout_seconds) == (1000, 5, 10.0)
    tuned = settings_from_env({"ROUTER_HTTP_MAX_CONNECTIONS": "50", "ROUTER_HTTP_KEEPALIVE_SECONDS": "2",
                               "ROUTER_HTTP_HEADER_TIMEOUT_SECONDS": "2.5"})
    assert (tuned.http_max_connections, tuned.http_keepalive_seconds, tuned.http_header_timeout_seconds) == (50, 2, 2.5)
    for name in ("ROUTER_HTTP_MAX_CONNECTIONS", "ROUTER_HTTP_KEEPALIVE_SECONDS", "ROUTER_HTTP_HEADER_TIMEOUT_SECONDS"):
        for bad in ("0", "-1", "many", "nan", "inf"):
            with pytest.raises(ConfigError, match=name):
                settings_from_env({name: bad})


async def json_to(served: Served, method: str, path: str, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        return await client.request(method, path, content=body, headers=headers)


def assert_malformed(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_body", response.text


@pytest.mark.parametrize("shape", DEEP_BODIES)
async def test_deep_json_to_the_web_form_is_malformed_body(served, shape) -> None:
    assert_malformed(await json_to(served, "POST", "/support", DEEP_BODIES[shape]))


@pytest.mark.parametrize("shape", DEEP_BODIES)
async def test_deep_json_to_patch_endpoints_is_malformed_body(served, shape) -> None:
    created = await json_to(served, "POST", "/api/v1/messages",
                            b'{"channel": "api", "sender": {"email": "deep@example.net"}, "text": "hello"}')
    assert created.status_code == 202, created.text
    for path in (f"/api/v1/tickets/{created.json()['ticket_ref']}", "/api/v1/agents/aiko@example.com"):
        assert_malformed(await json_to(served, "PATCH", path, DEEP_BODIES[shape]))


@pytest.mark.parametrize("shape", DEEP_BODIES)
async def test_deep_json_to_the_integration_api_is_malformed_body(served, shape) -> None:
    assert_malformed(await json_to(served, "POST", "/api/v1/messages", DEEP_BODIES[shape]))
