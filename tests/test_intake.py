"""Inbound through the integration API and the web form: one customer, one thread, no duplicates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import post_message


def api_message(text: str, *, email: str = "mika@example.net", external_id: str | None = None) -> dict:
    """A request body, for the tests about the API's answer itself (the others use `post_message`)."""
    body: dict = {"channel": "api", "sender": {"name": "Mika", "email": email}, "text": text}
    if external_id:
        body["external_id"] = external_id
    return body


async def post(client, auth, body):
    return await client.post("/api/v1/messages", json=body, headers=auth)


async def count(pool, table: str) -> int:
    """Rows in `table`; for messages, only what customers sent (acks are outbound messages too)."""
    where = " WHERE direction = 'in'" if table == "messages" else ""
    async with pool.acquire() as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}{where}")


async def test_api_and_web_form_typing_the_same_unproved_email_make_one_thread(client, auth, pool):
    first = await post(client, auth, api_message("My invoice is wrong", external_id="crm-1"))
    assert first.status_code == 202
    body = first.json()
    assert body["duplicate"] is False and body["ticket_ref"].startswith("T-")

    # Nobody has proved the address yet: both typed it, and it is their only way to hear back.
    form = await client.post("/support", data={"name": "Mika", "email": "MIKA@example.net",
                                               "subject": "Follow-up", "message": "Any news on my invoice?"})
    assert form.status_code == 200
    assert body["ticket_ref"] not in form.text  # the reference goes to the address, not to the page

    assert await count(pool, "customers") == 1
    assert await count(pool, "tickets") == 1
    async with pool.acquire() as conn:
        channels = await conn.fetch("SELECT channel FROM messages WHERE direction = 'in' ORDER BY id")
    assert [r["channel"] for r in channels] == ["api", "web"]

    other = await post(client, auth, api_message("Hello", email="someone.else@example.org"))
    assert other.json()["ticket_ref"] != body["ticket_ref"]
    assert await count(pool, "tickets") == 2
    assert await count(pool, "customers") == 2


async def test_redelivery_of_same_external_id_is_stored_once(client, auth, pool):
    first = await post(client, auth, api_message("Refund please", external_id="evt-42"))
    again = await post(client, auth, api_message("Refund please", external_id="evt-42"))
    assert again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    assert await count(pool, "messages") == 1


async def test_concurrent_duplicates_store_one_message(client, auth, pool):
    import asyncio

    results = await asyncio.gather(*(post(client, auth, api_message("dup", external_id="same")) for _ in range(8)))
    assert all(r.status_code == 202 for r in results)
    assert sorted(r.json()["duplicate"] for r in results) == [False] + [True] * 7
    assert await count(pool, "messages") == 1
    assert await count(pool, "customers") == 1


async def test_message_after_solve_reopens_within_window_else_new_linked_ticket(client, auth, pool, clock):
    ref = await post_message(client, auth, "Package never arrived", email="mika@example.net")
    solved = await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    assert solved.status_code == 200 and solved.json()["status"] == "solved"

    clock.advance(timedelta(days=2))
    again = await post_message(client, auth, "Still not here", email="mika@example.net")
    assert again == ref
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert detail["status"] == "open"
    assert [m["text"] for m in detail["messages"] if m["direction"] == "in"] == ["Package never arrived",
                                                                                "Still not here"]

    await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    clock.advance(timedelta(days=8))  # past the demo's 7-day reopen window
    later = await post_message(client, auth, "New problem", email="mika@example.net")
    assert later != ref
    new_detail = (await client.get(f"/api/v1/tickets/{later}", headers=auth)).json()
    assert new_detail["previous_ticket"] == ref
    assert (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["status"] == "solved"


async def test_japanese_text_round_trips_and_is_classified(client, auth):
    text = "請求書の金額が間違っています。返金をお願いします。①㈱～"
    ref = await post_message(client, auth, text, email="yamada@example.jp", subject="ご請求について")
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert detail["messages"][0]["text"] == text
    assert detail["subject"] == "ご請求について"
    assert detail["language"] == "ja"
    assert detail["topic"] == "billing"


async def test_english_technical_message_classified(client, auth):
    ref = await post_message(client, auth, "The app shows an error at login", email="b@x.io")
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert (detail["language"], detail["topic"]) == ("en", "technical")


async def test_identities_proved_together_merge_the_customers_and_their_threads(client, auth, pool):
    await post_message(client, auth, "first by email", email="mika@example.net", verified=["email"])
    await post_message(client, auth, "now from telegram", channel="telegram", sender_id="777")
    assert await count(pool, "customers") == 2
    # A message whose platform vouches for both identities proves they are one person.
    await post_message(client, auth, "it is me", channel="telegram", sender_id="777", email="mika@example.net",
                       verified=["email"])
    async with pool.acquire() as conn:
        live = await conn.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL")
        active = await conn.fetchval("SELECT count(*) FROM tickets WHERE status IN ('open', 'pending')")
        msgs = await conn.fetchval(
            "SELECT count(*) FROM messages m JOIN tickets t ON t.id = m.ticket_id"
                " WHERE t.status = 'open' AND m.direction = 'in'")
    assert (live, active, msgs) == (1, 1, 3)


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "malformed_body"),
    (b"[1, 2]", 400, "malformed_body"),
    (b'{"channel": "api", "text": "hi"}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "not-an-email"}, "text": "hi"}', 422, "invalid_input"),
    (b'{"channel": "API!", "sender": {"email": "x@y.io"}, "text": "hi"}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}, "text": 5}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}, "text": "  "}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}, "text": "a\\u0000b"}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}, "text": "lone \\udc9d surrogate"}', 422, "invalid_input"),
    (b'{"channel": "api", "sender": {"email": "x@y.io"}, "subject": "\\ud800", "text": "hi"}', 422,
     "invalid_input"),
    (b"\xff\xfe\x00garbage", 400, "malformed_body"),
])
async def test_bad_input_gets_json_problem_and_stores_nothing(client, auth, pool, body, status, code):
    response = await client.post("/api/v1/messages", content=body,
                                 headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == code and response.json()["detail"]
    assert await count(pool, "messages") == 0
    assert await count(pool, "customers") == 0


async def test_oversize_body_is_refused(client, auth, pool):
    huge = {"channel": "api", "sender": {"email": "x@y.io"}, "text": "x" * (2 * 1024 * 1024)}
    response = await post(client, auth, huge)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert await count(pool, "messages") == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_wrong_or_missing_token_is_401(client, pool, headers):
    response = await client.post("/api/v1/messages", json=api_message("hi"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert await count(pool, "messages") == 0


async def test_web_form_page_in_japanese_and_english(client):
    ja = await client.get("/support", headers={"Accept-Language": "ja,en;q=0.8"})
    en = await client.get("/support", headers={"Accept-Language": "en-US,en;q=0.9,ja;q=0.5"})
    assert "お問い合わせ" in ja.text and 'lang="ja"' in ja.text
    assert "Contact support" in en.text and 'lang="en"' in en.text


async def test_web_form_json_and_attachments(client, pool, data_dir):
    response = await client.post("/support", json={"name": "Kenji", "email": "kenji@example.jp",
                                                   "message": "配送状況を教えてください"})
    assert response.status_code == 202 and response.json() == {"accepted": True}
    files = [("attachments", ("請求書.pdf", b"%PDF-1.4 test", "application/pdf"))]
    multipart = await client.post("/support", data={"email": "kenji@example.jp", "message": "添付します"},
                                  files=files)
    assert multipart.status_code == 200
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT filename, size, sha256 FROM attachments")
    assert row["filename"] == "請求書.pdf" and row["size"] == len(b"%PDF-1.4 test")
    assert (data_dir / "attachments" / row["sha256"][:2] / row["sha256"]).read_bytes() == b"%PDF-1.4 test"


async def test_web_form_honeypot_stores_nothing(client, pool):
    response = await client.post("/support", data={"email": "bot@spam.example", "message": "buy now",
                                                   "website": "http://spam.example"})
    assert response.status_code == 200
    assert await count(pool, "messages") == 0


async def test_web_form_errors_are_shown_not_crashed(client, pool):
    response = await client.post("/support", data={"email": "nope", "message": "hi"},
                                 headers={"Accept-Language": "ja"})
    assert response.status_code == 422
    assert "入力内容をご確認ください" in response.text
    json_response = await client.post("/support", json={"email": "a@b.io"})
    assert json_response.status_code == 422 and json_response.json()["error"] == "invalid_input"
    assert await count(pool, "messages") == 0


async def test_web_form_rate_limited(client):
    statuses = [
        (await client.post("/support", json={"email": "a@b.io", "message": f"m{i}"})).status_code
        for i in range(8)
    ]
    assert statuses[:5] == [202] * 5
    assert 429 in statuses[5:]


async def test_health_ready_metrics(client, auth):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    await post_message(client, auth, "hello", email="mika@example.net")
    metrics = (await client.get("/metrics")).text
    assert 'router_messages_ingested_total{channel="api",duplicate="false"} 1.0' in metrics
    assert 'router_tickets_opened_total{channel="api",how="new"} 1.0' in metrics


async def test_ticket_list_keyset_pages(client, auth):
    for i in range(5):
        await post_message(client, auth, f"question {i}", email=f"c{i}@example.com")
    seen = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/tickets", params=params, headers=auth)).json()
        seen += [t["ref"] for t in page["tickets"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len(set(seen)) == 5
    bad = await client.get("/api/v1/tickets", params={"cursor": "%%%"}, headers=auth)
    assert bad.status_code == 422
    assert (await client.get("/api/v1/tickets")).status_code == 401


async def test_web_form_over_the_message_size_limit_is_refused(client, pool):
    files = [("attachments", ("big.bin", b"x" * (11 * 1024 * 1024), "application/octet-stream"))]
    response = await client.post("/support", data={"email": "big@example.com", "message": "see file"}, files=files)
    assert response.status_code == 413
    assert await count(pool, "messages") == 0


async def test_the_web_form_styles_come_from_its_own_stylesheet_so_the_csp_can_forbid_inline_ones(client):
    page = await client.get("/support")
    assert "<style" not in page.text and 'href="/support.css"' in page.text
    css = await client.get("/support.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".hp" in css.text  # the honeypot stays hidden from people
