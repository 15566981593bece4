"""`python -m bench soak` runs end to end (issue 14 §7), so the soak cannot rot between the runs that
measure with it: a few seconds at a tiny rate through every channel, agents working, against a real
`router serve` on a test database. Latency is not judged here (no timed tests); what is: every
message sent was accepted and stored exactly once, on every channel, and the report has its rows."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def test_the_soak_sends_every_channel_and_stores_what_it_accepted(database: str, tmp_path: Path) -> None:
    figures_path = tmp_path / "soak.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "soak", "--rate", "20", "--minutes", "0.05", "--interval", "1.5",
        "--corpus", "40", "--generators", "1", "--dsn", database, "--json", str(figures_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode in (0, 1), output.decode()  # 1: a target missed on this loaded machine
    figures = json.loads(figures_path.read_text())

    assert figures["errors"] == 0, figures["problems"]
    assert figures["accepted"] == 60  # 20 a second for 3 s: the open loop sends on schedule
    assert figures["stored"] == figures["accepted"]
    sent = {channel: sum(row["sent"] for row in figures["rows"] if row["channel"] == channel)
            for channel in ("smtp", "api", "web")}
    assert sent == {"smtp": 36, "api": 18, "web": 6}
    assert {row["interval"] for row in figures["rows"]} == {1, 2}
    assert b"Stored 60 inbound messages, accepted 60" in output
