"""The `/reports` page and its CSV exports over the hand-computed week (`conftest.py`)."""

from __future__ import annotations

import csv
import io

from tests.conftest import sign_in


async def test_the_page_shows_the_figures_in_the_leads_language(client, week) -> None:
    await sign_in(client, "lena@example.com")
    page = await client.get("/reports", params=week.period)
    assert page.status_code == 200
    assert 'value="2026-11-20"' in page.text and 'value="2026-11-25"' in page.text
    assert "<svg" in page.text and "<script>" not in page.text and "style=" not in page.text
    assert "1h 30m" in page.text  # median first reply, business time
    assert "75.0%" in page.text  # first-reply compliance
    japanese = await client.get("/reports", params=week.period, headers={"Accept-Language": "ja"})
    assert "初回返信時間(中央値)" in japanese.text


async def test_the_default_period_is_the_last_30_days_in_the_leads_timezone(client, clock) -> None:
    await sign_in(client, "lena@example.com")
    page = await client.get("/reports")
    # The clock reads Wednesday 2026-11-25 10:00 in Tokyo.
    assert 'value="2026-10-27"' in page.text and 'value="2026-11-25"' in page.text


async def test_csv_export_is_an_excel_friendly_attachment(client, week) -> None:
    await sign_in(client, "lena@example.com")
    answer = await client.get("/reports/comments.csv", params=week.period)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="comments-2026-11-20-2026-11-25.csv"'
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["Ticket", "Score", "Comment", "Agent", "Answered"]
    assert rows[1][:4] == [week.refs["A"], "5", "とても助かりました", "Chie Sato"]


async def test_csv_durations_are_minutes(client, week) -> None:
    await sign_in(client, "lena@example.com")
    answer = await client.get("/reports/agents.csv", params=week.period)
    rows = {row[0]: row for row in csv.reader(io.StringIO(answer.content.decode("utf-8-sig")))}
    chie = next(row for name, row in rows.items() if name.startswith("Chie"))
    assert chie[1:5] == ["1", "1", "120.0", "120.0"]


async def test_an_unknown_table_is_a_404_page(client) -> None:
    await sign_in(client, "lena@example.com")
    answer = await client.get("/reports/nothing.csv")
    assert answer.status_code == 404
