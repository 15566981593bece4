"""The `router` console script: serve, migrate, check-config, demo (SPEC §3 Commands)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from router import db
from router.config import ConfigError, Settings, ensure_secret_key, load_config, parse_config, settings_from_env


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    print(f"Starting embedded PostgreSQL in {settings.data_dir / 'pg'} …", flush=True)
    return db.start_embedded_postgres(settings.data_dir)


async def _migrate(dsn: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await db.migrate(conn)
    finally:
        await conn.close()


def cmd_migrate(settings: Settings) -> int:
    applied = asyncio.run(_migrate(_database_url(settings)))
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


def cmd_serve(settings: Settings) -> int:
    import uvicorn

    from router.app import create_app
    from router.workers import default_workers

    settings = ensure_secret_key(settings)
    try:
        config = load_config(settings)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    dsn = _database_url(settings)
    app = create_app(config, dsn=dsn, workers=default_workers(config), reload_config=lambda: load_config(settings))
    # Only URLs that answer: the web inbox pages are not built yet (README, Status).
    print(f"Agent API:     {settings.public_url}/api/v1/tickets   (config: {config.source})", flush=True)
    print(f"Web form:      {settings.public_url}/support", flush=True)
    print(f"SMTP intake:   {settings.smtp_host}:{settings.smtp_port}", flush=True)
    if config.source == "built-in demo":
        print("Demo login:    aiko@example.com / demo  (also ben@, chie@, lena@example.com)", flush=True)
        print("Demo API:      Authorization: Bearer demo-aiko  (demo-ben, demo-chie, demo-lena)", flush=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally instead lets the
    # embedded PostgreSQL be stopped by its exit hook when this is its last user.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="info")
    return 0


def cmd_demo(settings: Settings) -> int:
    from router.demo import send_demo_traffic

    return asyncio.run(send_demo_traffic(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="router", description="Omnichannel support ticket router")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve HTTP, SMTP and the background workers")
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
        return cmd_serve(settings)
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "check-config":
        return cmd_check_config(settings, args.file)
    return cmd_demo(settings)


if __name__ == "__main__":
    sys.exit(main())
