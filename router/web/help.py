"""The public knowledge base: `/help` (articles and a search box that works without JavaScript),
`/help/{slug}` (an article, Markdown rendered and sanitized), and the two calls the chat widget and
the web form make while a customer types: `GET /help/suggest` and `POST /help/{slug}/solved`.

Pages speak the article's language, else `?lang=`, else the browser's (Accept-Language). Public
calls are rate-limited per client address; a suggestion counts as shown once per visitor, article
and source in `SHOWN_WINDOW_SECONDS`, so typing a long question does not count it for every word.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import OrderedDict
from datetime import UTC
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from router.core import kb
from router.core.errors import Forbidden, InvalidInput, MalformedBody, NotFound, RateLimited, RouterError
from router.core.store import kb as kb_store
from router.core.store.kb import Suggestion
from router.ratelimit import RateLimiter
from router.web.chat import origin_allowed
from router.web.http import client_address, read_body, services
from router.web.inbox.i18n import LANGUAGES, negotiate, register, translate
from router.web.inbox.render import STATIC_PREFIX, environment
from router.web.inbox.session import same_origin

MAX_SOLVED_BODY = 1024
SEARCH_RESULTS = 20
SHOWN_WINDOW_SECONDS = 30 * 60
MAX_REMEMBERED = 20_000


class ShownFilter:
    """Which (visitor, article, source) showings are new: one seen within the window is not counted
    again. In memory and per process, like the rate limits: a second process may count a visitor
    once more, which is within what the rate is for."""

    def __init__(self, window: float = SHOWN_WINDOW_SECONDS, max_keys: int = MAX_REMEMBERED):
        self.window = window
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def fresh(self, visitor: str, slugs: list[str], source: str, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        found = []
        for slug in slugs:
            key = (visitor, slug, source)
            seen = self._seen.pop(key, None)
            if seen is None or now - seen >= self.window:
                found.append(slug)
                seen = now
            self._seen[key] = seen
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return found


class HelpLimits:
    """The per-process state of the public calls, kept on the app (one per app, so tests are apart)."""

    def __init__(self) -> None:
        self.suggest = RateLimiter(rate_per_minute=60, burst=20)
        self.solved = RateLimiter(rate_per_minute=10, burst=5)
        self.shown = ShownFilter()


def limits(request: Request) -> HelpLimits:
    found: HelpLimits | None = getattr(request.app.state, "help_limits", None)
    if found is None:
        found = request.app.state.help_limits = HelpLimits()
    return found


def _language_param(request: Request) -> str | None:
    """`?lang=` when it looks like a language code, else None (no preference)."""
    value = request.query_params.get("lang", "").strip().lower()
    try:
        return kb.check_language(value) if value else None
    except InvalidInput:
        return None


def page_language(request: Request, preferred: str | None = None) -> str:
    """The language the page speaks: `preferred` (the article's), `?lang=`, else Accept-Language."""
    for candidate in (preferred, _language_param(request)):
        if candidate in LANGUAGES:
            return candidate
    return negotiate(None, request.headers.get("accept-language"))


def _page(request: Request, template: str, language: str, context: dict[str, Any], *,
          status: int = 200) -> HTMLResponse:
    def _(text: str, **values: object) -> str:
        return translate(language, text, **values)

    values = {"lang": language, "_": _, "static": lambda name: STATIC_PREFIX + name, "status": status, **context}
    return HTMLResponse(environment.get_template(template).render(values), status_code=status,
                        headers={"Cache-Control": "no-cache"})


def _query(request: Request) -> str:
    q = request.query_params.get("q", "")
    if len(q) > kb.MAX_QUERY_CHARS:
        raise InvalidInput(f"`q` is longer than {kb.MAX_QUERY_CHARS} characters")
    return q.strip()


async def _count_shown(request: Request, conn: Any, found: list[Suggestion], source: str) -> None:
    fresh = limits(request).shown.fresh(client_address(request), [s.slug for s in found], source)
    if fresh:
        day = services(request).clock().astimezone(UTC).date()
        await kb_store.record_shown(conn, fresh, source, day)


async def help_index(request: Request) -> Response:
    """The articles in the page's language (all of them when none is in it), or the search results."""
    language = page_language(request)
    try:
        q = _query(request)
        if q:
            limits(request).suggest.check(client_address(request))
    except (InvalidInput, RateLimited) as exc:
        return _page(request, "help_error.html", language, {"detail": exc.detail}, status=exc.status)
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        if q:
            results = await kb.suggest(conn, q, language, SEARCH_RESULTS)
            await _count_shown(request, conn, results, "help")
            return _page(request, "help.html", language, {"q": q, "results": results, "topics": []})
        articles = await kb_store.list_published(conn, language) or await kb_store.list_published(conn, None)
    topics = [(topic, list(items)) for topic, items in itertools.groupby(articles, key=lambda a: a.topic)]
    return _page(request, "help.html", language, {"q": "", "results": None, "topics": topics})


async def help_article(request: Request) -> Response:
    slug = request.path_params["slug"]
    async with services(request).require_pool().acquire() as conn:
        article = await kb_store.published(conn, slug) if len(slug) <= kb.SLUG_LIMIT else None
    if article is None:
        language = page_language(request)
        return _page(request, "help_error.html", language,
                     {"detail": translate(language, "There is no article at this address.")}, status=404)
    return _page(request, "help_article.html", page_language(request, article.language), {
        "article": article, "html": kb.render_markdown(article.body),
        "solved": request.query_params.get("solved") == "1"})


async def suggest(request: Request) -> Response:
    """`{"articles": [{"slug", "title", "url"}]}`: at most three, best first, in `lang` first. `source`
    (`chat`, `webform`, `help`) says where they are shown, for the deflection counts; the chat
    widget's calls, which the contract left without it, are counted as `chat`."""
    limits(request).suggest.check(client_address(request))
    q = _query(request)
    source = kb.check_source(request.query_params.get("source", "chat"))
    svc = services(request)
    found: list[Suggestion] = []
    if q:
        async with svc.require_pool().acquire() as conn:
            found = await kb.suggest(conn, q, _language_param(request))
            await _count_shown(request, conn, found, source)
    base = svc.config.settings.public_url
    return JSONResponse({"articles": [{"slug": s.slug, "title": s.title, "url": kb.suggestion_url(base, s.slug)}
                                      for s in found]}, headers={"Cache-Control": "no-store", **_cors(request)})


def _widget_site(request: Request) -> bool:
    """A page on another site the chat widget may be embedded in (`[chat] allowed_origins`)."""
    origin = request.headers.get("origin")
    if origin in (None, "null") or same_origin(request):
        return False
    svc = services(request)
    return origin_allowed(origin, svc.config.chat, svc.config.settings.public_url)


def _cors(request: Request) -> dict[str, str]:
    """The widget on an allowed site reads suggestions and reports "solved" across origins (no
    cookies are involved, so no credentials are allowed)."""
    if not _widget_site(request):
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": request.headers["origin"], "Vary": "Origin"}


async def solved_preflight(request: Request) -> Response:
    """The browser asks before the widget's JSON POST from an allowed site."""
    if not _widget_site(request):
        raise Forbidden("cross-origin request refused")
    return Response(status_code=204, headers={**_cors(request), "Access-Control-Allow-Methods": "POST",
                                              "Access-Control-Allow-Headers": "Content-Type",
                                              "Access-Control-Max-Age": "600"})


def _is_form(request: Request) -> bool:
    """Sent by the article page's own form (no JavaScript): answered with pages, not JSON."""
    return request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


async def _solved_source(request: Request) -> kb.Source:
    """The source sent as JSON (the widget, the web form) or as the article page's form."""
    body = await read_body(request, MAX_SOLVED_BODY)
    if _is_form(request):
        try:
            values = parse_qs(body.decode(), max_num_fields=5)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedBody("the form could not be read") from exc
        return kb.check_source((values.get("source") or [""])[0])
    try:
        data = json.loads(body) if body else {}
    except (ValueError, RecursionError) as exc:
        raise MalformedBody("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise MalformedBody("the body must be a JSON object")
    return kb.check_source(data.get("source"))


async def solved(request: Request) -> Response:
    """Count "this solved my problem": 204, or back to the article when sent from its page's form."""
    slug = request.path_params["slug"]
    try:
        if request.headers.get("origin") not in (None, "null") and not same_origin(request) \
                and not _widget_site(request):
            raise Forbidden("cross-origin request refused")
        limits(request).solved.check(client_address(request))
        source = await _solved_source(request)
        if len(slug) > kb.SLUG_LIMIT:
            raise NotFound(f"no article {slug!r}")
        svc = services(request)
        async with svc.require_pool().acquire() as conn:
            await kb.record_solved(conn, slug, source, svc.clock())
    except RouterError as exc:
        if not _is_form(request):
            raise
        return _page(request, "help_error.html", page_language(request), {"detail": exc.detail}, status=exc.status)
    if _is_form(request):
        return RedirectResponse(f"/help/{slug}?solved=1#feedback", status_code=303)
    return Response(status_code=204, headers=_cors(request))


routes = [
    Route("/help", help_index, methods=["GET"]),
    Route("/help/suggest", suggest, methods=["GET"]),
    Route("/help/{slug}", help_article, methods=["GET"]),
    Route("/help/{slug}/solved", solved, methods=["POST"]),
    Route("/help/{slug}/solved", solved_preflight, methods=["OPTIONS"]),
]

register({
    "Help center": "ヘルプセンター",
    "Search the help center": "ヘルプセンターを検索",
    "Search": "検索",
    "Articles": "記事",
    "No articles yet.": "まだ記事がありません。",
    "Other questions": "その他",
    "Results for “{q}”": "「{q}」の検索結果",
    "Nothing matched. Try other words, or contact us.":
        "一致する記事がありませんでした。別の言葉で検索するか、お問い合わせください。",
    "Contact support": "お問い合わせ",
    "All articles": "すべての記事",
    "Did this solve your problem?": "この記事で問題は解決しましたか？",
    "This solved my problem": "これで解決しました",
    "Thank you! We are glad it helped.": "ありがとうございます。お役に立ててよかったです。",
    "Still need help?": "まだお困りですか？",
    "There is no article at this address.": "このアドレスには記事がありません。",
    "Page not found": "ページが見つかりません",
    "Updated {date}": "{date} 更新",
    "Language": "言語",
})
