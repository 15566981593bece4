"""Report figures against the hand-computed week in `conftest.py`."""

from __future__ import annotations

from typing import Any

import httpx

from tests.reports.conftest import Week


async def _summary(client: httpx.AsyncClient, auth: dict[str, str], week: Week, **params: str) -> dict[str, Any]:
    response = await client.get("/api/v1/reports/summary", params={**week.period, **params}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_first_reply_time_is_business_time_across_a_weekend_and_a_holiday(client, auth, week) -> None:
    tickets = (await _summary(client, auth, week))["tickets"]
    assert tickets["created"] == 4
    assert tickets["first_response"] == {"count": 4, "median_seconds": 5400.0, "p90_seconds": 29880.0}


async def test_resolution_time_counts_tickets_solved_now(client, auth, week) -> None:
    tickets = (await _summary(client, auth, week))["tickets"]
    assert tickets["resolution"] == {"count": 2, "median_seconds": 17100.0, "p90_seconds": 23580.0}


async def test_sla_compliance_per_target(client, auth, week) -> None:
    sla = {row["target"]: row for row in (await _summary(client, auth, week))["sla"]}
    assert sla["first_response"] == {"target": "first_response", "decided": 4, "met": 3, "breached": 1,
                                     "compliance": 0.75}
    assert sla["next_response"] == {"target": "next_response", "decided": 1, "met": 1, "breached": 0,
                                    "compliance": 1.0}
    assert sla["resolution"] == {"target": "resolution", "decided": 3, "met": 3, "breached": 0, "compliance": 1.0}


async def test_transfers_per_ticket_and_reopen_rate(client, auth, week) -> None:
    tickets = (await _summary(client, auth, week))["tickets"]
    assert tickets["transfers"] == {"total": 3, "per_ticket": 0.75}
    assert tickets["reopen"] == {"solved": 3, "reopened": 1, "rate": 0.3333}


async def test_hour_of_day_is_in_the_customers_timezone(client, auth, week) -> None:
    hours = {row["hour"]: row["tickets"] for row in (await _summary(client, auth, week))["by_hour"] if row["tickets"]}
    assert hours == {8: 1, 10: 2, 17: 1}


async def test_tickets_by_channel_topic_and_language(client, auth, week) -> None:
    report = await _summary(client, auth, week)
    assert [(row["key"], row["tickets"]) for row in report["by_channel"]] == [("api", 4)]
    assert [(row["key"], row["tickets"]) for row in report["by_topic"]] == [("billing", 4)]
    assert [(row["key"], row["tickets"]) for row in report["by_language"]] == [("en", 4)]


async def test_csat_and_nps(client, auth, week) -> None:
    report = await _summary(client, auth, week)
    csat = report["csat"]
    assert (csat["sent"], csat["answered"], csat["average"], csat["response_rate"]) == (3, 2, 4.5, 0.6667)
    assert [c["comment"] for c in csat["comments"]] == ["とても助かりました"]
    assert report["nps"] == {"sent": 4, "answered": 4, "promoters": 2, "passives": 1, "detractors": 1,
                             "score": 25.0}


async def test_agent_table(client, auth, week) -> None:
    agents = {row["email"]: row for row in (await _summary(client, auth, week))["agents"]}
    chie = agents["chie@example.com"]
    assert (chie["assigned"], chie["handled"], chie["first_response_median_seconds"], chie["csat_average"]) == \
        (1, 1, 7200.0, 5.0)
    assert sum(row["load"] for row in agents.values()) == 2  # B and D are open or pending


async def test_backlog_is_now_whatever_the_period(client, auth, week) -> None:
    backlog = (await _summary(client, auth, week, **{"from": "2026-01-01", "to": "2026-01-31"}))["backlog"]
    assert backlog["total"] == 2
    assert backlog["oldest_created_at"] is not None


async def test_filters_narrow_the_cohort(client, auth, week) -> None:
    by_agent = (await _summary(client, auth, week, agent="chie@example.com"))["tickets"]
    assert (by_agent["created"], by_agent["first_response"]["median_seconds"]) == (1, 7200.0)
    assert (await _summary(client, auth, week, channel="email"))["tickets"]["created"] == 0
    assert (await _summary(client, auth, week, team="support"))["tickets"]["created"] == 4


async def test_a_period_before_the_week_counts_nothing(client, auth, week) -> None:
    tickets = (await _summary(client, auth, week, **{"from": "2026-11-01", "to": "2026-11-19"}))["tickets"]
    assert tickets["created"] == 0
    assert tickets["first_response"]["median_seconds"] is None
