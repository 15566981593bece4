"""`router serve --workers N` when things go wrong around it: reloads while starting, a port already taken."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from router.processes import Supervisor
from tests.e2e.helpers import ROUTER, Serve

CHILD = """
import signal, sys, time
time.sleep(1.5)  # importing the app, opening the pool, running the lifespan: no SIGHUP handler yet
signal.signal(signal.SIGHUP, lambda *_: print("reloaded", flush=True))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.1)
"""


async def test_a_reload_while_a_worker_starts_does_not_kill_it() -> None:
    """The supervisor forwards SIGHUP to every child whose process exists (`Supervisor.forward`),
    also to one still importing and starting, which has no handler yet: SIGHUP's default action
    kills it. It is restarted, but counted as a quick failure: a reload sent while workers (re)start
    — config management re-sending HUP, a restart loop — kills them again, and after
    MAX_QUICK_FAILURES the supervisor stops the whole service."""
    async def nothing() -> None:
        return None

    supervisor = Supervisor([sys.executable, "-c", CHILD], {}, 1, nothing)
    running = asyncio.create_task(supervisor.run())
    try:
        while 0 not in supervisor.children:  # noqa: ASYNC110 - the supervisor has no event for it
            await asyncio.sleep(0.01)
        first = supervisor.children[0]
        await asyncio.sleep(0.2)  # the child runs, still starting
        supervisor.reload()
        await asyncio.sleep(2.5)
        assert supervisor.children[0] is first and first.returncode is None, (
            f"the starting worker was killed by the reload: {first.returncode}")
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 30)


def _start_workers(serve: Serve) -> subprocess.Popen[bytes]:
    with open(serve.log_path, "a") as log:
        return subprocess.Popen([str(ROUTER), "serve", "--workers", "2"], env=serve.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _listening_pids(port: int) -> set[int]:
    return {c.pid for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid is not None}


async def test_workers_refuse_a_port_another_service_already_listens_on(tmp_path: Path, database: str) -> None:
    """The children bind with SO_REUSEPORT, so a port already served by ANOTHER process that also set
    SO_REUSEPORT (a second `router serve --workers N` or `--reuse-port` left running, a staging instance
    on another database, any process of the same user) is silently shared: the kernel hands half of
    the new connections — mail and webhooks included — to the other service. A single `router serve`
    fails with "address in use"; with --workers the supervisor should make sure the port is free
    (bind it once without SO_REUSEPORT, or hold the listening sockets itself and pass them down)."""
    serve = Serve(tmp_path, database_url=database, name="taken")
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", serve.http_port))
    other.listen()
    try:
        serve.process = await asyncio.to_thread(_start_workers, serve)
        deadline = time.monotonic() + 60
        shared = False
        while time.monotonic() < deadline and serve.process.poll() is None:
            workers = {c.pid for c in psutil.Process(serve.process.pid).children()}
            if workers & _listening_pids(serve.http_port):
                shared = True
                break
            await asyncio.sleep(0.3)
        assert not shared, "the workers listen on a port another process already serves: connections are split"
        assert serve.process.poll() not in (None, 0), "the supervisor neither refused nor exited"
    finally:
        other.close()
        if serve.process is not None and serve.process.poll() is None:
            serve.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(serve.process.wait, 40)
            except Exception:
                serve.process.kill()
        serve.close()


SUPERVISOR = """
import asyncio, os, sys
from router import cli, processes
from router.config import load_config, settings_from_env

async def slow_prepare(dsn, config):
    print("preparing", flush=True)
    await asyncio.sleep(4)  # migrating a big database, hashing the config's passwords...

processes.prepare_database = slow_prepare
processes.child_argv = lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
config = load_config(settings_from_env(os.environ))
sys.exit(cli._supervise("postgresql://unused/unused", config, 1, reload_config=lambda: config))
"""


async def test_a_reload_while_the_supervisor_prepares_the_database_does_not_kill_it(tmp_path: Path) -> None:
    """`cli._supervise` migrates and applies the config's agents (`prepare_database`, seconds on a
    big database) BEFORE `Supervisor.run` installs its SIGHUP handler: a reload in that window (config
    management, `systemctl reload` right after a start) kills the supervisor with SIGHUP's default
    action, and the service never comes up. SIGHUP should be handled (or ignored) from the start."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ROUTER_CONFIG")}
    env["ROUTER_DATA_DIR"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", SUPERVISOR, env=env,
                                                   stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"preparing\n"
        process.send_signal(signal.SIGHUP)
        await asyncio.sleep(1)
        assert process.returncode is None, f"the supervisor died of the reload: {process.returncode}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
