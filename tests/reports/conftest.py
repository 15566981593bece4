"""A week of support work with hand-computed report figures.

Times are Asia/Tokyo (the demo's `jp-business` calendar: Mon–Fri 09:00–18:00, Japanese holidays
closed; Monday 2026-11-23 is Labour Thanksgiving Day). Every ticket matches the `normal` policy
(first reply 4h, next reply 8h, resolution 3d, on `jp-business`). What happens, in order:

  Fri 11-20 10:00  D created                      Fri 17:00  A created, transferred to ben, then chie
  Tue 11-24 10:00  A first reply   FRT = Fri 17-18 (1h) + Tue 09-10 (1h)  = 2h   (wall clock: 89h)
  Tue 11-24 12:00  D first reply   FRT = Fri 10-18 (8h) + Tue 09-12 (3h)  = 11h  > 4h: breached
  Tue 11-24 13:00  D writes again  (a next-reply clock starts)
  Tue 11-24 15:00  A solved        resolution = 1h + Tue 09-15 (6h)        = 7h
  Tue 11-24 17:30  C created, transferred to ben
  Wed 11-25 09:30  C first reply   FRT = Tue 17:30-18 (30m) + Wed 09-09:30 = 1h
  Wed 11-25 10:00  D next reply    Tue 13-18 (5h) + Wed 09-10 (1h) = 6h < 8h: met;  B created
  Wed 11-25 10:30  B first reply   FRT = 30m
  Wed 11-25 11:00  C solved (resolution 30m + 2h = 2.5h), B solved
  Wed 11-25 11:30  B writes again: reopened
  Wed 11-25 12:00  the report

Hand-computed figures (tickets created 2026-11-20..2026-11-25):
  FRT [0.5h, 1h, 2h, 11h]: median 1.5h = 5400 s; p90 (linear) 2h + 0.7 * 9h = 8.3h = 29880 s
  resolution (solved now: A 7h, C 2.5h): median 4.75h = 17100 s; p90 2.5h + 0.9 * 4.5h = 6.55h = 23580 s
  SLA first reply 3 of 4 met; next reply 1 of 1; resolution 3 of 3 (A, C, and B's first cycle)
  transfers 3 / 4 tickets = 0.75; reopen 1 (B) of 3 solved at least once (A, B, C)
  hour of day (customer's time): D 10, A 17, B 10, C 08 (C's customer lives in Europe/London)
  CSAT: A 5 (chie), C 4, B unanswered -> average 4.5, response rate 2/3; NPS 10, 9, 7, 3 -> 25
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from router.core.clock import ManualClock
from tests.conftest import post_message


def jst(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-11-`day` `hour`:`minute` in Tokyo, as UTC."""
    return datetime(2026, 11, day, hour - 9, minute, tzinfo=UTC) if hour >= 9 else \
        datetime(2026, 11, day - 1, hour + 15, minute, tzinfo=UTC)


@dataclass
class Week:
    refs: dict[str, str]
    period: dict[str, str]


async def _at(clock: ManualClock, when: datetime) -> None:
    clock.now = when


async def _reply(client: httpx.AsyncClient, auth: dict[str, str], ref: str) -> None:
    response = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "We are on it."}, headers=auth)
    assert response.status_code == 201, response.text


async def _status(client: httpx.AsyncClient, auth: dict[str, str], ref: str, status: str) -> None:
    response = await client.patch(f"/api/v1/tickets/{ref}", json={"status": status}, headers=auth)
    assert response.status_code == 200, response.text


async def _transfer(client: httpx.AsyncClient, auth: dict[str, str], ref: str, agent: str) -> None:
    response = await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": agent}, headers=auth)
    assert response.status_code == 200, response.text


async def _write(client: httpx.AsyncClient, auth: dict[str, str], who: str, text: str = "I need a refund") -> str:
    return await post_message(client, auth, text, email=f"{who}@example.net", name=who.upper(),
                              subject=f"refund {who}")


@pytest.fixture
async def week(client: httpx.AsyncClient, auth: dict[str, str], clock: ManualClock, pool: asyncpg.Pool) -> Week:
    refs: dict[str, str] = {}
    await _at(clock, jst(20, 10))
    refs["D"] = await _write(client, auth, "d")
    await _at(clock, jst(20, 17))
    refs["A"] = await _write(client, auth, "a")
    await _transfer(client, auth, refs["A"], "ben@example.com")
    await _transfer(client, auth, refs["A"], "chie@example.com")
    await _at(clock, jst(24, 10))
    await _reply(client, auth, refs["A"])
    await _at(clock, jst(24, 12))
    await _reply(client, auth, refs["D"])
    await _at(clock, jst(24, 13))
    assert await _write(client, auth, "d", "still waiting for the refund") == refs["D"]
    await _at(clock, jst(24, 15))
    await _status(client, auth, refs["A"], "solved")
    await _at(clock, jst(24, 17, 30))
    refs["C"] = await _write(client, auth, "c")
    await _transfer(client, auth, refs["C"], "ben@example.com")
    await _at(clock, jst(25, 9, 30))
    await _reply(client, auth, refs["C"])
    await _at(clock, jst(25, 10))
    await _reply(client, auth, refs["D"])
    refs["B"] = await _write(client, auth, "b")
    await _at(clock, jst(25, 10, 30))
    await _reply(client, auth, refs["B"])
    await _at(clock, jst(25, 11))
    await _status(client, auth, refs["C"], "solved")
    await _status(client, auth, refs["B"], "solved")
    await _at(clock, jst(25, 11, 30))
    assert await _write(client, auth, "b", "the refund did not arrive after all") == refs["B"]
    await _at(clock, jst(25, 12))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE customers SET timezone = 'Europe/London' WHERE id = (SELECT customer_id"
                           " FROM tickets WHERE number = $1)", int(refs["C"][2:]))
        await _surveys(conn, refs)
    return Week(refs, {"from": "2026-11-20", "to": "2026-11-25"})


async def _surveys(conn: asyncpg.Connection, refs: dict[str, str]) -> None:
    """Survey answers as the CSAT feature stores them (`csat_responses`, migration 0015)."""
    chie = await conn.fetchval("SELECT id FROM agents WHERE email = 'chie@example.com'")
    rows: list[tuple[Any, ...]] = [
        (refs["A"], chie, "csat", 5, "とても助かりました", jst(25, 11, 45)),
        (refs["C"], None, "csat", 4, None, jst(25, 11, 50)),
        (refs["B"], None, "csat", None, None, None),
        (refs["A"], None, "nps", 10, None, jst(25, 11, 45)),
        (refs["B"], None, "nps", 9, None, jst(25, 11, 45)),
        (refs["C"], None, "nps", 7, None, jst(25, 11, 45)),
        (refs["D"], None, "nps", 3, "slow", jst(25, 11, 45)),
    ]
    for ref, agent, kind, score, comment, answered in rows:
        await conn.execute(
            "INSERT INTO csat_responses (ticket_id, customer_id, agent_id, kind, score, comment, sent_at, answered_at)"
            " SELECT id, customer_id, $2, $3, $4, $5, $6, $7 FROM tickets WHERE number = $1",
            int(ref[2:]), agent, kind, score, comment, jst(25, 11, 30), answered)
