"""`router serve --workers 2`: two processes on one port pair, a child that dies is replaced, a scrape
of `/metrics` counts every child's work, SIGHUP reaches every child, SIGTERM stops them all and the
supervisor exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import API_TOKEN, ROUTER, Serve

TIMEOUT = 30.0


def children(serve: Serve) -> list[psutil.Process]:
    assert serve.process is not None
    return psutil.Process(serve.process.pid).children()


def listening_pids(port: int) -> set[int]:
    return {c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


async def until(what: str, check, serve: Serve) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {TIMEOUT}s for {what}\n{serve.log_tail()}")
        await asyncio.sleep(0.2)


def send_mail(serve: Serve, number: int) -> None:
    mail = EmailMessage()
    mail["From"] = f"Customer <workers{number}@customer.example>"
    mail["To"] = "support@example.com"
    mail["Subject"] = f"Question {number}"
    mail["Message-ID"] = f"<workers-{number}@customer.example>"
    mail.set_content("Where is my parcel?")
    with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=10) as smtp:
        smtp.send_message(mail)


def ingested_mails(scrape: httpx.Response) -> float:
    assert scrape.status_code == 200, scrape.text
    return sum(sample.value for family in text_string_to_metric_families(scrape.text) for sample in family.samples
               if sample.name == "router_messages_ingested_total" and sample.labels.get("channel") == "email")


def start(serve: Serve, *options: str) -> None:
    """`router serve` with `options`, as `Serve.start` runs it (its own session: SIGTERM reaches only
    the supervisor, which stops its workers)."""
    with open(serve.log_path, "a") as log:
        serve.process = subprocess.Popen([str(ROUTER), "serve", *options], env=serve.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)


async def test_two_workers_share_the_ports_and_are_supervised(tmp_path: Path, database: str) -> None:
    serve = Serve(tmp_path, database_url=database, name="workers")
    serve.env["ROUTER_SECRET_KEY"] = "one key for every process of the service"
    try:
        await asyncio.to_thread(start, serve, "--workers", "2")
        await asyncio.to_thread(serve.wait_ready)
        await until("both workers listening on the HTTP and the SMTP port", lambda: len(children(serve)) == 2 and all(
            listening_pids(port) == {c.pid for c in children(serve)} for port in (serve.http_port, serve.smtp_port)),
            serve)

        first, second = children(serve)
        os.kill(first.pid, signal.SIGKILL)
        await until("the killed worker to be replaced", lambda: len(children(serve)) == 2
                    and first.pid not in {c.pid for c in children(serve)}
                    and len(listening_pids(serve.smtp_port)) == 2, serve)
        assert second.is_running(), "the other worker kept serving"
        for number in range(6):  # whichever worker a connection lands on takes it
            await asyncio.to_thread(send_mail, serve, number)
        async with httpx.AsyncClient(base_url=serve.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
            listed = (await api.get("/api/v1/tickets", params={"limit": "20"})).json()["tickets"]
        assert len(listed) == 6
        # Whichever worker answers a scrape, it counts every worker's messages (multiprocess metrics).
        for _ in range(8):
            async with httpx.AsyncClient(base_url=serve.base_url) as scraper:  # a new connection each time
                assert ingested_mails(await scraper.get("/metrics")) == 6

        applied = serve.log_path.read_text().count("configuration applied")
        assert serve.process is not None
        os.kill(serve.process.pid, signal.SIGHUP)
        await until("every worker to reload its configuration",
                    lambda: serve.log_path.read_text().count("configuration applied") == applied + 2, serve)

        workers = children(serve)
        serve.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(serve.process.wait, TIMEOUT) == 0
        assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    finally:
        serve.close()
