"""A report read on three connections sharing a snapshot
(router/core/store/reports.py `summary`), when the database fails under it."""

from __future__ import annotations

import httpx

from router.core.store import reports as store


async def test_a_database_that_stops_answering_mid_report_is_a_503_not_a_crash(client, auth, monkeypatch) -> None:
    """The report's statements now run in an `asyncio.TaskGroup`, which wraps whatever a statement
    raises in an `ExceptionGroup`. The web edge maps the database-down errors (TimeoutError,
    QueryCanceledError, a lost connection... `DATABASE_DOWN_ERRORS`) to 503 + Retry-After by their
    TYPE; an ExceptionGroup is none of them, so a frozen or restarting database turns every report into
    an unexpected-error 500 (logged as a bug), where it was a 503 before this change. Here one of the
    three reads outlives the serving pool's 3 s statement bound, as on a stalled database."""
    monkeypatch.setattr(store, "_KB_SQL", "SELECT pg_sleep(5), $1::timestamptz AS s, $2::timestamptz AS e")
    try:
        response = await client.get("/api/v1/reports/summary", params={"from": "2026-11-01", "to": "2026-11-30"},
                                    headers=auth, timeout=30)
    except BaseException as exc:  # what escapes the app is the finding
        raise AssertionError(f"the report escaped the error mapping with {exc!r}") from exc
    assert isinstance(response, httpx.Response)
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("retry-after") == "5"
