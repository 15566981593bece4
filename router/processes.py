"""`router serve --workers N`: a supervisor and N `router serve` processes sharing the ports.

Each child is an ordinary `router serve` that binds the HTTP and SMTP ports with `SO_REUSEPORT`, so
the kernel spreads new connections over the children, and shares the background work through the
database (leases and `FOR UPDATE SKIP LOCKED`, README "Several processes"). The supervisor holds no
socket and no pool; it only
- starts the children on one database URL (it starts the embedded PostgreSQL once, before them),
  after migrating and applying the config's agents once (`prepare_database`): children starting
  together would otherwise queue behind each other's first sync and could time out,
- on SIGHUP applies the new config's agents to the database once, then forwards SIGHUP so each
  child reloads its configuration: the children's own sync then finds nothing to hash and cannot
  time out queued behind each other (a child that failed to apply it would keep the old
  configuration while the others moved on),
- turns SIGTERM/SIGINT into a graceful SIGTERM for every child and exits once they are gone
  (SIGKILL after `STOP_SECONDS`),
- restarts a child that dies unexpectedly, with exponential backoff, and gives up (exit 1) when the
  children keep dying at start: a port in use or a broken database will not mend by itself.
Children live in their own process group (a terminal's Ctrl-C reaches the supervisor only, which
stops them in order) and get SIGTERM from the kernel if the supervisor itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping

from agents import store as agent_store
from router import db
from router.config import Config

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0
"""How long a child may take to finish its requests after SIGTERM before it is killed."""
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 30.0
"""A child that ran this long before dying starts its backoff afresh."""
MAX_QUICK_FAILURES = 5
"""Deaths in a row, each before `STABLE_SECONDS`, after which the supervisor stops everything."""
_PR_SET_PDEATHSIG = 1


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` with `SO_REUSEPORT`: every process that binds the same way gets
    its own accept queue on the same port, and the kernel balances new connections over them."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def prepare_database(dsn: str, config: Config) -> None:
    """Migrate and apply the config's teams and agents once, with setup-work timeouts (the first
    sync hashes every initial password), so the children's own start finds both done."""
    pool = await db.create_pool(dsn, min_size=1, max_size=1, command_timeout=db.SETUP_TIMEOUT)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
            await agent_store.sync_from_config(conn, config.teams, config.agents)
    finally:
        await pool.close()


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on `host:port` yet: binding without `SO_REUSEPORT` fails when any
    process listens there, also one that set `SO_REUSEPORT` itself, which the children's own binds
    would silently share the port (and its mail and webhooks) with."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies (Linux); SIGHUP
    ignored until the child's app takes it (a reload forwarded while it starts must not kill it: it
    reads the configuration as it starts anyway)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps `count` copies of `argv` running with `env` until told to stop."""

    def __init__(self, argv: list[str], env: Mapping[str, str], count: int,
                 prepare: Callable[[], Awaitable[None]]) -> None:
        self.argv = argv
        self.env = dict(env)
        self.count = count
        self.prepare = prepare
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.gave_up = False
        self.reloading: set[asyncio.Task[None]] = set()
        self.one_reload_at_a_time = asyncio.Lock()

    async def run(self) -> int:
        """Until SIGTERM/SIGINT (returns 0) or children dying at start over and over (returns 1)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await asyncio.gather(*(self._keep(slot) for slot in range(self.count)))
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return 1 if self.gave_up else 0

    def stop(self) -> None:
        self.stopping.set()

    def reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self.reloading.add(task)
        task.add_done_callback(self.reloading.discard)

    async def _reload(self) -> None:
        async with self.one_reload_at_a_time:
            try:
                await self.prepare()
            except Exception:  # the children report a broken file themselves, and keep serving
                log.exception("SIGHUP: the configuration's agents could not be applied first; the workers try")
            self.forward(signal.SIGHUP)

    def forward(self, signum: int) -> None:
        for process in self.children.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def _keep(self, slot: int) -> None:
        """One child slot: start, wait, restart with backoff, stop on request."""
        quick_failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, process_group=0, preexec_fn=_die_with_parent)
            self.children[slot] = process
            log.info("worker %d: started (pid %d)", slot, process.pid)
            if await self._exited_or_stopping(process):
                await self._stop_child(slot, process)
                return
            ran = time.monotonic() - started
            quick_failures = quick_failures + 1 if ran < STABLE_SECONDS else 1
            if quick_failures > MAX_QUICK_FAILURES:
                log.error("worker %d: died %d times in a row within %.0fs of starting; stopping the service",
                          slot, quick_failures - 1, STABLE_SECONDS)
                self.gave_up = True
                self.stop()
                return
            delay = min(FIRST_BACKOFF_SECONDS * 2 ** (quick_failures - 1), MAX_BACKOFF_SECONDS)
            log.warning("worker %d (pid %d) exited unexpectedly (%s) after %.1fs; restarting in %.1fs",
                        slot, process.pid, _describe(process.returncode), ran, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _exited_or_stopping(self, process: asyncio.subprocess.Process) -> bool:
        """Wait for the child to exit (False) or for the supervisor to be told to stop (True)."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        stopping.cancel()
        return self.stopping.is_set()

    async def _stop_child(self, slot: int, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                log.warning("worker %d (pid %d) still running %.0fs after SIGTERM; killing it",
                            slot, process.pid, STOP_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        log.info("worker %d (pid %d) stopped (%s)", slot, process.pid, _describe(process.returncode))


def _describe(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
        return f"signal {-returncode}"
    return f"exit code {returncode}"


def child_argv() -> list[str]:
    """How the supervisor starts a child: this interpreter, `router serve`, sharing the ports."""
    return [sys.executable, "-m", "router.cli", "serve", "--supervised"]
