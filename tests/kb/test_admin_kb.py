"""`/admin/kb`: leads and admins write articles (plain agents get 403), every write needs the session's
CSRF token, the preview shows the sanitized result; `/inbox/kb/links` gives any agent links to insert."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace

import httpx
import pytest

from router.web.inbox.render import TEMPLATES, environment
from tests.conftest import API_TOKEN, ORIGIN, post_message, sign_in


def render_picker(ref: str, language: str | None) -> str:
    """The picker as the ticket page includes it (the page itself is tested with the ticket page)."""
    live = SimpleNamespace(header=SimpleNamespace(ticket=SimpleNamespace(language=language)))
    return environment.get_template("help_picker.html").render(
        ref=ref, live=live, _=lambda text, **values: text.format(**values), static=lambda name: f"/static/{name}")


Browser = Callable[[str], Awaitable[tuple[httpx.AsyncClient, str]]]

ARTICLE = {"slug": "refund-policy", "title": "返金ポリシー", "language": "ja", "topic": "お支払い",
           "tags": "返金, 払い戻し", "body": "**30日以内**なら返金できます。<script>alert(1)</script>",
           "published": "on"}


@pytest.fixture
async def browser(app) -> AsyncIterator[Browser]:
    async with contextlib.AsyncExitStack() as stack:
        async def open_one(email: str) -> tuple[httpx.AsyncClient, str]:
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test"))
            return client, await sign_in(client, email)
        yield open_one


async def post(client: httpx.AsyncClient, path: str, csrf: str | None, data: dict[str, str]) -> httpx.Response:
    form = {**data, **({"csrf_token": csrf} if csrf is not None else {})}
    return await client.post(path, data=form, headers={"Origin": ORIGIN})


async def count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM kb_articles")


async def test_a_plain_agent_gets_403_on_every_editor_page_and_write(browser, pool):
    client, csrf = await browser("ben@example.com")
    for path in ("/admin/kb", "/admin/kb/new"):
        page = await client.get(path)
        assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    assert (await post(client, "/admin/kb", csrf, ARTICLE)).status_code == 403
    assert (await post(client, "/admin/kb/preview", csrf, ARTICLE)).status_code == 403
    assert await count(pool) == 0


async def test_a_lead_creates_edits_and_publishes_an_article(browser, client, pool):
    lead, csrf = await browser("lena@example.com")
    assert (await lead.get("/admin/kb/new")).status_code == 200
    created = await post(lead, "/admin/kb", csrf, ARTICLE)
    assert created.status_code == 303
    path = created.headers["location"].split("?")[0]
    page = await lead.get(created.headers["location"])
    assert "記事を作成しました" in page.text or "The article was created." in page.text
    assert (await client.get("/help/suggest", params={"q": "払い戻し", "lang": "ja"})).json()["articles"][0][
        "slug"] == "refund-policy"

    saved = await post(lead, path, csrf, {**ARTICLE, "slug": "ignored", "title": "返金のルール", "published": ""})
    assert saved.status_code == 303
    row = await pool.fetchrow("SELECT slug, title, published, tags FROM kb_articles")
    assert (row["slug"], row["title"], row["published"], row["tags"]) == ("refund-policy", "返金のルール", False,
                                                                          ["返金", "払い戻し"])
    assert (await client.get("/help/refund-policy")).status_code == 404  # unpublished
    listing = await lead.get("/admin/kb")
    assert "返金のルール" in listing.text and "/help/refund-policy" in listing.text


async def test_writes_without_the_csrf_token_or_from_another_site_change_nothing(browser, pool):
    lead, csrf = await browser("lena@example.com")
    assert (await post(lead, "/admin/kb", None, ARTICLE)).status_code == 403
    assert (await post(lead, "/admin/kb", "wrong-token", ARTICLE)).status_code == 403
    foreign = await lead.post("/admin/kb", data={**ARTICLE, "csrf_token": csrf},
                              headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert await count(pool) == 0


async def test_preview_shows_the_sanitized_article_and_saves_nothing(browser, pool):
    lead, csrf = await browser("lena@example.com")
    page = await post(lead, "/admin/kb", csrf, {**ARTICLE, "action": "preview"})
    assert page.status_code == 200 and "<strong>30日以内</strong>" in page.text
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # still in the editor's textarea, as text
    fragment = await lead.post("/admin/kb/preview", data={**ARTICLE, "csrf_token": csrf},
                               headers={"Origin": ORIGIN, "HX-Request": "true"})
    assert fragment.status_code == 200 and 'id="kb-preview"' in fragment.text and "<html" not in fragment.text
    assert "<strong>30日以内</strong>" in fragment.text and "<script>alert" not in fragment.text
    assert await count(pool) == 0


async def test_bad_input_comes_back_with_the_reason_and_what_was_typed(browser, pool):
    lead, csrf = await browser("lena@example.com")
    assert (await post(lead, "/admin/kb", csrf, ARTICLE)).status_code == 303
    taken = await post(lead, "/admin/kb", csrf, {**ARTICLE, "title": "別の記事"})
    assert taken.status_code == 409 and "/help/refund-policy" in taken.text and "別の記事" in taken.text
    bad_slug = await post(lead, "/admin/kb", csrf, {**ARTICLE, "slug": "返金 ページ"})
    assert bad_slug.status_code == 422 and 'role="alert"' in bad_slug.text
    assert (await post(lead, "/admin/kb", csrf, {**ARTICLE, "slug": "x", "title": " "})).status_code == 422
    assert (await lead.get("/admin/kb/999999")).status_code == 404
    assert await count(pool) == 1


async def test_the_integration_token_is_not_a_session(client, pool):
    response = await client.post("/admin/kb", data=ARTICLE, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code in (303, 401) and await count(pool) == 0


async def test_agents_find_article_links_for_a_reply_on_the_ticket_page(browser, pool):
    lead, csrf = await browser("lena@example.com")
    await post(lead, "/admin/kb", csrf, ARTICLE)
    agent, _ = await browser("aiko@example.com")
    ref = await post_message(agent, {"Authorization": f"Bearer {API_TOKEN}"}, "返金をお願いします",
                             email="taro@example.net")
    picker = render_picker(ref, "ja")
    assert 'action="/inbox/kb/links"' in picker and 'name="lang" value="ja"' in picker
    assert 'for="kb-picker-q"' in picker and "help_picker.js" in picker
    assert '{% include "help_picker.html" %}' in (TEMPLATES / "ticket.html").read_text()
    fragment = await agent.get("/inbox/kb/links", params={"q": "返金", "ref": ref, "lang": "ja"},
                               headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.search(r'data-kb-insert="返金ポリシー: http://127\.0\.0\.1:8000/help/refund-policy"', fragment.text)
    page = await agent.get("/inbox/kb/links", params={"q": "返金", "ref": ref})
    assert "<html" in page.text and f'href="/inbox/{ref}#reply-box"' in page.text
    assert "http://127.0.0.1:8000/help/refund-policy" in page.text
