"""PostgreSQL servers for the suite other than the embedded one: Debian's packaged server, started by
the tests, or any server named by a DSN; and a PgBouncer in transaction pooling mode in front of one.

The suite runs on the embedded server by default. `ROUTER_TEST_PG=debian15` (or another major
version) starts Debian's server (package `postgresql-15`) in a temporary directory for the session;
`ROUTER_TEST_DATABASE_URL=postgresql://user@host:port/db` uses an existing server on which that user
may create databases. Both prove the service runs on "any PostgreSQL 14+" (SPEC §4 Reliability).

PostgreSQL and PgBouncer refuse to run as root, and CI runs the tests as root: then the servers run as
Debian's `postgres` system user (created by the package), the way the embedded wheel runs its server
as a user of its own — `subprocess` switches user in the child, no sudo or runuser needed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
PGBOUNCER = "pgbouncer"
SERVICE_USER = "postgres"
"""The unprivileged user the servers run as when the tests run as root (Debian's packages create it)."""
START_TIMEOUT = 60.0


def requested_server() -> contextlib.AbstractContextManager[str] | None:
    """The server the environment asks the suite to use instead of the embedded one, if any: a context
    manager yielding a superuser DSN to its `postgres` database."""
    url = os.environ.get("ROUTER_TEST_DATABASE_URL")
    if url:
        return contextlib.nullcontext(url)
    wanted = os.environ.get("ROUTER_TEST_PG", "")
    if not wanted:
        return None
    if not wanted.startswith("debian"):
        raise RuntimeError(f"ROUTER_TEST_PG={wanted!r}: expected debianNN (e.g. debian15)")
    return debian_postgres(wanted.removeprefix("debian"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: str = SERVICE_USER) -> dict[str, object]:
    """subprocess arguments that drop root to `user`; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"running as root needs the system user {user!r} "
                           "(apt-get install postgresql creates `postgres`)") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _owned_tempdir(prefix: str, user: str = SERVICE_USER) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(base, user, user)
    return base


def _check(command: list[str], *, cwd: Path, log: Path | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
                          **_run_as())  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")


def debian_bin_dir(version: str) -> Path:
    bin_dir = DEBIAN_PG_ROOT / version / "bin"
    if not (bin_dir / "postgres").exists():
        raise RuntimeError(f"{bin_dir}/postgres not found: apt-get install postgresql-{version}")
    return bin_dir


@contextlib.contextmanager
def debian_postgres(version: str = "15") -> Iterator[str]:
    """Debian's PostgreSQL `version` in a temporary cluster for as long as the block runs, listening on
    a unix socket in its private directory only (no TCP port to collide with a system server), so its
    DSN has the embedded server's shape, `postgresql://postgres@/postgres?host=<socket dir>`, which
    the fixtures and tests take apart. Settings as the embedded server's (UTF-8, C.UTF-8, UTC)."""
    bin_dir = debian_bin_dir(version)
    base = _owned_tempdir(f"router-test-pg{version}-")
    data, log = base / "data", base / "server.log"
    try:
        _check([str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "--username=postgres",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"], cwd=base)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{base}'\n"
                       "timezone = 'UTC'\nmax_connections = 200\n")
        _check([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(START_TIMEOUT)),
                "start"], cwd=base, log=log)
        try:
            yield f"postgresql://postgres@/postgres?host={base}"
        finally:
            # Immediate: the cluster is thrown away, nothing needs a clean checkpoint.
            _check([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], cwd=base, log=log)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Bouncer:
    """A running PgBouncer: `dsn(database)` reaches that database through it."""

    host: str
    port: int
    user: str

    def dsn(self, database: str, **query: str) -> str:
        extra = "".join(f"&{key}={value}" for key, value in query.items()).replace("&", "?", 1)
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}{extra}"


def server_address(server_uri: str) -> tuple[str, int, str]:
    """(host or socket directory, port, user) of a server DSN, as PgBouncer's `[databases]` wants them."""
    parsed = urlparse(server_uri)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "127.0.0.1"])[0]
    port = int(query.get("port", [parsed.port or 5432])[0])
    return host, port, parsed.username or "postgres"


@contextlib.contextmanager
def pgbouncer(server_uri: str, *, pool_size: int = 4, **settings: str) -> Iterator[Bouncer]:
    """PgBouncer in transaction pooling mode in front of `server_uri`, every database passed through,
    `pool_size` server connections per database (few, so clients share them and any session state
    one client left behind would show up in another's transactions)."""
    binary = shutil.which(PGBOUNCER) or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise RuntimeError("pgbouncer not found: apt-get install pgbouncer")
    host, port, user = server_address(server_uri)
    # A server on a unix socket only lets its own system user in (the embedded one's socket is in
    # its 0700 data directory): PgBouncer runs as whoever owns that directory.
    runs_as = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else SERVICE_USER
    if runs_as == "root":
        runs_as = SERVICE_USER
    base = _owned_tempdir("router-test-pgbouncer-", runs_as)
    listen = free_port()
    ini, log = base / "pgbouncer.ini", base / "pgbouncer.log"
    (base / "users.txt").write_text(f'"{user}" ""\n')
    extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
    ini.write_text(
        f"[databases]\n* = host={host} port={port} user={user}\n\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base / 'users.txt'}\nadmin_users = {user}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        f"logfile = {log}\nserver_lifetime = 3600\n{extra}")
    if os.geteuid() == 0:
        for path in (ini, base / "users.txt"):
            shutil.chown(path, runs_as, runs_as)
    # -q: it logs to `log` only (a pipe nobody reads would fill up and stall it).
    process = subprocess.Popen([binary, "-q", str(ini)], cwd=base, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, **_run_as(runs_as))  # type: ignore[call-overload]
    try:
        _wait_for_port(listen, process, log)
        yield Bouncer("127.0.0.1", listen, user)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on port {port} within {START_TIMEOUT:.0f}s")


def have_pgbouncer() -> bool:
    return shutil.which(PGBOUNCER) is not None or Path("/usr/sbin/pgbouncer").exists()
