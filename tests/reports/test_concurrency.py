"""A report reads on three connections sharing one snapshot (`store.reports.summary`): several asked
at once must neither exhaust the pool nor disagree with one read alone."""

from __future__ import annotations

import asyncio

import httpx

from router import db
from router.app import create_app
from tests.reports.conftest import Week


async def test_reports_asked_at_once_fit_a_small_pool_and_agree(week: Week, database, config, clock, auth) -> None:
    small = await db.create_pool(database, min_size=1, max_size=4, acquire_timeout=2.0)
    try:
        app = create_app(config, pool=small, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as client:
            alone = await client.get("/api/v1/reports/summary", params=week.period, headers=auth)
            together = await asyncio.gather(*(
                client.get("/api/v1/reports/summary", params=week.period, headers=auth) for _ in range(5)))
    finally:
        await small.close()
    assert alone.status_code == 200, alone.text
    assert [r.status_code for r in together] == [200] * 5, [r.text[:200] for r in together]
    assert all(r.json() == alone.json() for r in together)
    assert alone.json()["tickets"]["transfers"]["total"] == 3  # the week's hand-computed figure
