"""The `router` console script: serve, migrate, check-config, demo (SPEC §3 Commands)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router import db
from router.config import Config, ConfigError, Settings, load_config, parse_config, settings_from_env

MAX_REQUEST_HEAD_BYTES = 64 * 1024
"""The longest request line and headers accepted (httptools itself buffers a header of any size)."""


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus what `BoundedHttpProtocol` reads."""

    def __init__(self, app: Any, *, head_timeout: float, max_connections: int, busy_app: Any,
                 **options: Any) -> None:
        super().__init__(app, http=BoundedHttpProtocol, **options)
        self.head_timeout = head_timeout
        self.max_connections = max_connections
        self.busy_app = busy_app


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline and a size bound for every request head, and a
    connection limit answered like the API's other 503s.

    uvicorn waits forever for a request line and headers — its keep-alive timer runs only between a
    response and the next request's first byte — so connections that send half a request stay open.
    Here the head must be complete within `head_timeout` seconds of the connection opening or of the
    next request's first byte, and within `MAX_REQUEST_HEAD_BYTES`, else the connection is closed.
    Bodies and responses have no deadline here (uploads and event streams may be slow).

    A request arriving while more than `max_connections` connections are open (its own included), or
    `max_connections` requests are in progress, gets `busy_app`'s answer. uvicorn's `limit_concurrency`
    does the same check but answers a bare text 503 without `Retry-After` nor our headers."""

    def __init__(self, config: ServerConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.head_timeout = config.head_timeout
        self.max_connections = config.max_connections
        self.busy_app = config.busy_app
        self.head_deadline: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self.reading_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._expect_head()

    def data_received(self, data: bytes) -> None:
        if not self.reading_body:
            self._expect_head()
        waiting = self.head_deadline
        super().data_received(data)
        if waiting is not None and waiting is self.head_deadline:  # all of `data` belongs to the head
            self.head_bytes += len(data)
            if self.head_bytes > MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                     b"content-length: 0\r\nconnection: close\r\n\r\n")
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._expect_head()

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        self.reading_body = True
        if len(self.connections) <= self.max_connections and len(self.tasks) < self.max_connections:
            super().on_headers_complete()
            return
        app, self.app = self.app, self.busy_app  # the app uvicorn starts for this request
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self.reading_body = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _expect_head(self) -> None:
        if self.head_deadline is None:
            self.head_bytes = 0
            self.head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


WEBSOCKET_MAX_FRAME_BYTES = 256 * 1024
"""uvicorn reads a WebSocket frame whole before the chat's own limits see it (its default is 16 MiB):
this bounds that read, far above the largest frame `[chat] max_message_chars` allows."""


def server_config(app: Any, settings: Settings) -> ServerConfig:
    """How `router serve` runs uvicorn: bounded connections (SPEC §4 Security), and `X-Forwarded-For`
    believed only from `ROUTER_TRUSTED_PROXIES` (uvicorn would believe 127.0.0.1 by default, so any
    client of a pass-through proxy on this host could pick its address and dodge per-address limits)."""
    from router.web.app import over_capacity

    return ServerConfig(
        app, host=settings.http_host, port=settings.http_port, log_level="info",
        head_timeout=settings.http_header_timeout_seconds,
        max_connections=settings.http_max_connections, busy_app=over_capacity(),
        timeout_keep_alive=settings.http_keepalive_seconds,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        ws_max_size=WEBSOCKET_MAX_FRAME_BYTES,
    )


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    print(f"Starting embedded PostgreSQL in {settings.data_dir / 'pg'} …", flush=True)
    return db.start_embedded_postgres(settings.data_dir)


async def _migrate(dsn: str) -> list[str]:
    conn = await db.connect(dsn)
    try:
        return await db.migrate(conn)
    finally:
        await conn.close()


def cmd_migrate(settings: Settings) -> int:
    try:
        applied = asyncio.run(_migrate(_database_url(settings)))
    except db.UnsuitableServer as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_check_config(settings: Settings, path: str | None) -> int:
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
            config = parse_config(text, settings, source=path)
        else:
            config = load_config(settings)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"{config.source}: OK — {len(config.agents)} agents, {len(config.teams)} teams, "
          f"{len(config.topics)} topics, {len(config.sla_policies)} SLA policies, {len(config.calendars)} calendars")
    return 0


def cmd_serve(settings: Settings, *, workers: int = 1, reuse_port: bool = False, supervised: bool = False) -> int:
    """Serve in this process, or with `workers` > 1 supervise that many processes sharing the ports
    (`router.processes`). `reuse_port` binds with SO_REUSEPORT, so separately started processes can
    share the ports too; `supervised` is how the supervisor starts its children (no banner)."""
    from router.app import create_app
    from router.demo import social_settings
    from router.workers import default_workers

    # With the built-in demo config, webhook secrets the environment leaves unset are derived from
    # the secret key, as `router demo` derives them, so its signed social traffic is accepted.
    settings = dataclasses.replace(social_settings(settings), reuse_port=reuse_port or supervised)
    try:
        config = load_config(settings)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    dsn = _database_url(settings)
    if not supervised:
        _print_banner(settings, config, workers)
    if workers > 1:
        return _supervise(dsn, config, workers, reload_config=lambda: load_config(settings))
    app = create_app(config, dsn=dsn, workers=default_workers(config), reload_config=lambda: load_config(settings))
    sockets = None
    if settings.reuse_port:
        from router.processes import shared_socket

        try:
            sockets = [shared_socket(settings.http_host, settings.http_port)]
        except OSError as exc:
            print(f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}", file=sys.stderr)
            return 1
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally instead lets the
    # embedded PostgreSQL be stopped by its exit hook when this is its last user.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = uvicorn.Server(server_config(app, settings))
    server.run(sockets=sockets)
    return 0 if server.started else 1


def _print_banner(settings: Settings, config: Config, workers: int) -> None:
    processes = f"   ({workers} processes)" if workers > 1 else ""
    print(f"Web inbox:     {settings.public_url}/inbox   (config: {config.source}){processes}", flush=True)
    print(f"Agent API:     {settings.public_url}/api/v1/tickets", flush=True)
    print(f"Web form:      {settings.public_url}/support", flush=True)
    print(f"SMTP intake:   {settings.smtp_host}:{settings.smtp_port}", flush=True)
    if config.source == "built-in demo":
        print("Demo login:    aiko@example.com / demo  (also ben@, chie@, lena@example.com)", flush=True)
        print("Demo API:      Authorization: Bearer demo-aiko  (demo-ben, demo-chie, demo-lena)", flush=True)


def _supervise(dsn: str, config: Config, workers: int, *, reload_config: Callable[[], Config]) -> int:
    """Run `workers` children on one database: with the embedded PostgreSQL, this process started it
    and stays its user until the children are gone, so it is stopped after them. On SIGHUP the new
    config's agents are applied here first (a broken file is left to the children to report)."""
    from router.core.errors import DATABASE_DOWN_ERRORS
    from router.metrics import MULTIPROCESS_DIR
    from router.processes import Supervisor, child_argv, port_free, prepare_database

    # Until the supervisor's own handlers are in place: a reload is moot (the workers read the config
    # as they start), and a stop is a clean exit (the embedded PostgreSQL's exit hook runs).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = config.settings
    for host, port in ((settings.http_host, settings.http_port), (settings.smtp_host, settings.smtp_port)):
        if not port_free(host, port):
            print(f"cannot listen on {host}:{port}: another process already listens there", file=sys.stderr)
            return 1
    try:
        asyncio.run(prepare_database(dsn, config))
    except DATABASE_DOWN_ERRORS as exc:
        print(f"database unavailable at start: {exc!r}", file=sys.stderr)
        return 1
    except db.UnsuitableServer as exc:
        print(str(exc), file=sys.stderr)
        return 1

    async def prepare_reloaded() -> None:
        with contextlib.suppress(ConfigError):
            await prepare_database(dsn, reload_config())

    # Prometheus counters of every child (and of children that died) in files one scrape sums, whichever
    # child answers it (prometheus_client's multiprocess mode; `router.metrics`).
    metrics_dir = tempfile.mkdtemp(prefix="router-metrics-")
    env = {**os.environ, "DATABASE_URL": dsn, MULTIPROCESS_DIR: metrics_dir}
    try:
        return asyncio.run(Supervisor(child_argv(), env, workers, prepare_reloaded).run())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def cmd_demo(settings: Settings) -> int:
    from router.demo import send_demo_traffic

    return asyncio.run(send_demo_traffic(settings))


def _positive(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="router", description="Omnichannel support ticket router")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve HTTP, SMTP and the background workers")
    serve.add_argument("--workers", type=_positive, default=1, metavar="N",
                       help="run N processes sharing the HTTP and SMTP ports and the background work")
    serve.add_argument("--reuse-port", action="store_true",
                       help="bind the ports with SO_REUSEPORT, so separately started processes share them")
    serve.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="apply database migrations")
    check = sub.add_parser("check-config", help="validate a TOML config file")
    check.add_argument("file", nargs="?", help="config file (default: $ROUTER_CONFIG, ./router.toml or the demo)")
    sub.add_parser("demo", help="send realistic sample traffic on every channel to a running instance")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # embedded_postgres narrates every pg_ctl call at INFO; its warnings and errors still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        settings = settings_from_env(os.environ)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    if args.command == "serve":
        return cmd_serve(settings, workers=args.workers, reuse_port=args.reuse_port, supervised=args.supervised)
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "check-config":
        return cmd_check_config(settings, args.file)
    return cmd_demo(settings)


if __name__ == "__main__":
    sys.exit(main())
