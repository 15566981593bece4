"""Who may read reports: leads and admins (and the integration token); never plain agents."""

from __future__ import annotations

from tests.conftest import sign_in


async def test_the_api_needs_a_lead_or_an_admin(client, auth) -> None:
    assert (await client.get("/api/v1/reports/summary")).status_code == 401
    as_agent = await client.get("/api/v1/reports/summary", headers={"Authorization": "Bearer demo-aiko"})
    assert as_agent.status_code == 403
    assert as_agent.json()["error"] == "forbidden"
    assert (await client.get("/api/v1/reports/summary", headers={"Authorization": "Bearer demo-lena"})).status_code \
        == 200
    assert (await client.get("/api/v1/reports/summary", headers=auth)).status_code == 200


async def test_the_page_and_its_csv_are_for_leads(client) -> None:
    signed_out = await client.get("/reports")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
    await sign_in(client, "aiko@example.com")
    for path in ("/reports", "/reports/agents.csv"):
        refused = await client.get(path)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")


async def test_a_lead_session_reads_the_api(client) -> None:
    await sign_in(client, "lena@example.com")
    assert (await client.get("/api/v1/reports/summary")).status_code == 200


async def test_bad_parameters_are_clear_422s(client, auth) -> None:
    for params, words in (({"from": "2026-13-01"}, "date"), ({"from": "2026-11-30", "to": "2026-11-01"}, "after"),
                          ({"from": "2024-01-01", "to": "2026-01-01"}, "at most"), ({"team": "nobody"}, "no team"),
                          ({"agent": "nobody@example.com"}, "no agent"), ({"channel": "x" * 400}, "longer"),
                          # Centuries away would build millions of per-hour calendar rows (and hang the report).
                          ({"from": "0001-01-01", "to": "0001-01-31"}, "years ago"),
                          ({"from": "9999-01-01", "to": "9999-01-31"}, "a year ahead")):
        answer = await client.get("/api/v1/reports/summary", params=params, headers=auth)
        assert answer.status_code == 422, (params, answer.text)
        assert words in answer.json()["detail"]
