"""`make run` on the embedded database, as a real subprocess over real sockets (SPEC §3 Commands)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"`make run` exited early with {process.returncode}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_make_run_serves_on_embedded_database(tmp_path):
    http_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ROUTER_CONFIG")}
    env.update(ROUTER_DATA_DIR=str(tmp_path / "var"), ROUTER_HTTP_PORT=str(http_port),
               ROUTER_SMTP_PORT=str(smtp_port), ROUTER_API_TOKEN="e2e-token",
               ROUTER_PUBLIC_URL=f"http://127.0.0.1:{http_port}")
    log = open(tmp_path / "run.log", "w+")
    process = subprocess.Popen(["make", "-s", "-C", str(ROOT), "run"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{http_port}"
    try:
        assert wait_for(f"{base}/healthz", process).json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        sent = httpx.post(f"{base}/api/v1/messages", headers={"Authorization": "Bearer e2e-token"},
                          json={"channel": "api", "sender": {"email": "e2e@example.net"}, "text": "返金希望です"},
                          timeout=10)
        assert sent.status_code == 202, sent.text
        ref = sent.json()["ticket_ref"]
        ticket = httpx.get(f"{base}/api/v1/tickets/{ref}", headers={"Authorization": "Bearer e2e-token"}, timeout=5)
        assert ticket.json()["messages"][0]["text"] == "返金希望です"

        # `router demo` sends sample traffic on every channel into the running instance (SMTP included).
        demo = subprocess.run([str(ROOT / ".venv" / "bin" / "router"), "demo"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert demo.stdout.count("→ 202") >= 3 and demo.stdout.count("→ 2.0.0 OK") == 2, demo.stdout
        listed = httpx.get(f"{base}/api/v1/tickets", headers={"Authorization": "Bearer e2e-token"}, timeout=5)
        channels = {t["channel"] for t in listed.json()["tickets"]}
        assert {"api", "web", "email"} <= channels
        as_aiko = httpx.get(f"{base}/api/v1/tickets", headers={"Authorization": "Bearer demo-aiko"}, timeout=5)
        assert as_aiko.status_code == 200 and as_aiko.json()["tickets"]
        inbox = httpx.get(f"{base}/inbox", timeout=5)  # signed out: the sign-in page
        assert inbox.status_code == 303 and inbox.headers["location"].startswith("/login")
        signed_in = httpx.post(f"{base}/login", data={"email": "aiko@example.com", "password": "demo"},
                               headers={"Origin": base}, timeout=10)
        assert signed_in.status_code == 303 and "router_session" in signed_in.cookies
    except AssertionError as exc:
        log.seek(0)
        raise AssertionError(f"{exc}\n--- make run output ---\n{log.read()[-5000:]}") from exc
    finally:
        stop(process)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Web inbox:" in output and "aiko@example.com / demo" in output and "Bearer demo-aiko" in output
    assert process.returncode in (0, -signal.SIGTERM, 2), output[-3000:]
    assert not embedded_servers_for(tmp_path / "var" / "pg"), "the embedded PostgreSQL was left running"


def embedded_servers_for(pgdata: Path) -> list[int]:
    """PostgreSQL processes still serving `pgdata` (they get a moment to finish stopping)."""
    import psutil

    deadline = time.monotonic() + 10
    while True:
        running = [p.pid for p in psutil.process_iter(["name", "cmdline"])
                   if p.info["name"] == "postgres" and str(pgdata) in " ".join(p.info["cmdline"] or [])]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group (make and the router under it), then SIGKILL if needed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_sighup_applies_a_changed_config_and_survives_a_broken_one(tmp_path):
    from router.config import demo_config_text

    http_port, smtp_port = free_port(), free_port()
    config_file = tmp_path / "router.toml"
    config_file.write_text(demo_config_text(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(ROUTER_DATA_DIR=str(tmp_path / "var"), ROUTER_HTTP_PORT=str(http_port),
               ROUTER_SMTP_PORT=str(smtp_port), ROUTER_API_TOKEN="hup-token", ROUTER_CONFIG=str(config_file))
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(ROOT / ".venv" / "bin" / "router"), "serve"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{http_port}"
    headers = {"Authorization": "Bearer hup-token"}

    def agents() -> set[str]:
        return {a["email"] for a in httpx.get(f"{base}/api/v1/agents", headers=headers, timeout=5).json()["agents"]}

    def eventually(check, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.2)
        return False

    try:
        try:
            wait_for(f"{base}/readyz", process)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- router serve output ---\n{log_path.read_text()[-5000:]}") from exc
        assert "dan@example.com" not in agents()
        config_file.write_text(demo_config_text() + '\n[[agents]]\nemail = "dan@example.com"\nname = "Dan"\n'
                               'team = "support"\nskills = ["shipping"]\nlanguages = ["en"]\n', encoding="utf-8")
        os.kill(process.pid, signal.SIGHUP)
        assert eventually(lambda: "dan@example.com" in agents())

        config_file.write_text("[service\nbroken", encoding="utf-8")
        os.kill(process.pid, signal.SIGHUP)
        time.sleep(1)
        assert process.poll() is None
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        assert "dan@example.com" in agents()
    finally:
        stop(process)
    assert not embedded_servers_for(tmp_path / "var" / "pg")
