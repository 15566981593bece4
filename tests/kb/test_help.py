"""The public knowledge base: `/help`, `/help/{slug}`, `GET /help/suggest`, `POST /help/{slug}/solved`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from router.core.store import kb as kb_store
from tests.conftest import ORIGIN
from tests.kb.conftest import add_article


async def suggested(client, q: str, lang: str | None = None, **params: str) -> list[str]:
    query = {"q": q, **({"lang": lang} if lang else {}), **params}
    response = await client.get("/help/suggest", params=query)
    assert response.status_code == 200, response.text
    return [a["slug"] for a in response.json()["articles"]]


async def test_japanese_query_suggests_the_refund_article(client, articles):
    response = await client.get("/help/suggest", params={"q": "返金の方法", "lang": "ja"})
    assert response.status_code == 200
    first = response.json()["articles"][0]
    assert first == {"slug": "refund-ja", "title": "返金の手続きについて", "url": "http://127.0.0.1:8000/help/refund-ja"}
    assert "draft-refund" not in await suggested(client, "返金の方法", "ja")  # drafts are not public


async def test_english_query_suggests_the_english_article_first(client, articles):
    assert (await suggested(client, "How do I get my money back? I want a refund", "en"))[0] == "refund"
    assert (await suggested(client, "I cannot login, forgot my password", "en"))[0] == "password-reset"
    assert await suggested(client, "hello, how are you", "en") == []


async def test_articles_in_the_customers_language_come_first(client, articles):
    assert (await suggested(client, "返金 refund", "ja"))[0] == "refund-ja"
    assert (await suggested(client, "返金 refund", "en"))[0] == "refund"


async def test_at_most_three_suggestions(client, ctx, articles):
    for n in range(5):
        await add_article(ctx, slug=f"refund-{n}", title=f"返金 {n}", language="ja", body="返金")
    assert len(await suggested(client, "返金", "ja")) == 3


async def test_suggest_bounds_the_query_and_rate_limits_per_address(client, articles):
    too_long = await client.get("/help/suggest", params={"q": "あ" * 2001})
    assert too_long.status_code == 422 and too_long.json()["error"] == "invalid_input"
    assert (await client.get("/help/suggest", params={"q": "x", "source": "email"})).status_code == 422
    statuses = [(await client.get("/help/suggest", params={"q": "refund"})).status_code for _ in range(25)]
    assert statuses[:18] == [200] * 18 and statuses[-1] == 429
    limited = await client.get("/help/suggest", params={"q": "refund"})
    assert limited.json()["error"] == "rate_limited" and limited.headers["retry-after"]


async def test_shown_counts_once_per_visitor_and_solved_makes_the_deflection_rate(client, pool, clock, articles):
    for q in ("返金", "返金の", "返金の方法"):  # typing: three calls, the same article
        await suggested(client, q, "ja", source="webform")
    response = await client.post("/help/refund-ja/solved", json={"source": "webform"})
    assert response.status_code == 204 and response.content == b""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT a.slug, f.source, f.solved FROM kb_feedback f"
                                " JOIN kb_articles a ON a.id = f.article_id")
        shown = await conn.fetch("SELECT a.slug, s.source, s.shown FROM kb_shown s"
                                 " JOIN kb_articles a ON a.id = s.article_id ORDER BY a.slug")
        day = clock() - timedelta(hours=1)
        assert await kb_store.deflection(conn, day, clock() + timedelta(hours=1)) == (sum(r["shown"] for r in shown), 1)
    assert [tuple(r) for r in rows] == [("refund-ja", "webform", True)]
    assert ("refund-ja", "webform", 1) in [tuple(r) for r in shown]


async def test_solved_refuses_what_it_cannot_count(client, articles):
    assert (await client.post("/help/no-such/solved", json={"source": "chat"})).status_code == 404
    assert (await client.post("/help/draft-refund/solved", json={"source": "chat"})).status_code == 404
    assert (await client.post("/help/refund/solved", json={"source": "sms"})).status_code == 422
    assert (await client.post("/help/refund/solved", content=b"{not json",
                               headers={"content-type": "application/json"})).status_code == 400
    assert (await client.post("/help/refund/solved", json={"source": "chat"},
                              headers={"Origin": "https://evil.example"})).status_code == 403
    big = await client.post("/help/refund/solved", json={"source": "chat", "pad": "x" * 2000})
    assert big.status_code == 413


async def test_solved_is_rate_limited(client, articles):
    statuses = [(await client.post("/help/refund/solved", json={"source": "chat"})).status_code for _ in range(8)]
    assert statuses[:5] == [204] * 5 and statuses[-1] == 429


async def test_article_page_is_rendered_sanitized_and_in_its_language(client, ctx):
    await add_article(ctx, slug="evil", title="Hello <b>there</b>", language="ja",
                      body="本文 **太字**\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>"
                           "\n\n[x](javascript:alert(3)) <a href='javascript:alert(4)'>y</a>")
    page = await client.get("/help/evil", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert '<html lang="ja">' in page.text and "この記事で問題は解決しましたか" in page.text
    assert "<strong>太字</strong>" in page.text and "Hello &lt;b&gt;there&lt;/b&gt;" in page.text
    assert "<script>alert" not in page.text and "onerror" not in page.text
    assert 'href="javascript' not in page.text.lower()
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_article_page_feedback_form_works_without_javascript(client, pool, articles):
    response = await client.post("/help/refund/solved", data={"source": "help"}, headers={"Origin": ORIGIN})
    assert response.status_code == 303 and response.headers["location"] == "/help/refund?solved=1#feedback"
    thanks = await client.get("/help/refund?solved=1")
    assert "glad it helped" in thanks.text
    assert await pool.fetchval("SELECT count(*) FROM kb_feedback WHERE source = 'help' AND solved") == 1
    missing = await client.post("/help/nothing-here/solved", data={"source": "help"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


async def test_unknown_and_draft_articles_are_a_readable_404(client, articles):
    for path in ("/help/no-such-article", "/help/draft-refund", "/help/" + "a" * 300):
        page = await client.get(path, headers={"Accept-Language": "ja"})
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]
        assert "このアドレスには記事がありません" in page.text


async def test_help_index_lists_and_searches_without_javascript(client, articles):
    ja = await client.get("/help", headers={"Accept-Language": "ja,en;q=0.5"})
    assert ja.status_code == 200 and "返金の手続きについて" in ja.text and "How to get a refund" not in ja.text
    assert "返金（下書き）" not in ja.text
    en = await client.get("/help", params={"lang": "en"})
    assert "How to get a refund" in en.text and "返金の手続きについて" not in en.text
    found = await client.get("/help", params={"q": "返金の方法", "lang": "ja"})
    assert found.status_code == 200 and 'href="/help/refund-ja"' in found.text
    nothing = await client.get("/help", params={"q": "zzzz", "lang": "en"})
    assert "Nothing matched" in nothing.text
    too_long = await client.get("/help", params={"q": "x" * 3000})
    assert too_long.status_code == 422 and "text/html" in too_long.headers["content-type"]


async def test_the_widget_on_an_allowed_site_reads_suggestions_and_reports_solved(client, app, articles):
    """Embedded on a shop's site (`[chat] allowed_origins`), the widget calls across origins: CORS for
    that site only, no credentials, and the JSON POST's preflight answered."""
    svc = app.state.services
    await svc.apply_config(replace(svc.config, chat=replace(svc.config.chat, allowed_origins=("https://shop.example",))))
    shop = {"Origin": "https://shop.example"}
    found = await client.get("/help/suggest", params={"q": "返金の方法", "lang": "ja"}, headers=shop)
    assert found.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-credentials" not in found.headers and found.json()["articles"]
    asked = await client.options("/help/refund/solved", headers={**shop, "Access-Control-Request-Method": "POST"})
    assert asked.status_code == 204 and asked.headers["access-control-allow-methods"] == "POST"
    posted = await client.post("/help/refund/solved", json={"source": "chat"}, headers=shop)
    assert posted.status_code == 204 and posted.headers["access-control-allow-origin"] == "https://shop.example"

    elsewhere = {"Origin": "https://evil.example"}
    other = await client.get("/help/suggest", params={"q": "返金の方法", "lang": "ja"}, headers=elsewhere)
    assert "access-control-allow-origin" not in other.headers
    assert (await client.options("/help/refund/solved", headers=elsewhere)).status_code == 403
    assert (await client.post("/help/refund/solved", json={"source": "chat"}, headers=elsewhere)).status_code == 403
