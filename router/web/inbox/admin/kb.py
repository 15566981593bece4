"""`/admin/kb`: the knowledge-base editor (leads and admins write articles; plain agents get 403),
and `/inbox/kb/links`, the article finder every agent uses on a ticket to put a link in a reply.

Unlike the other admin pages, leads edit here too: writing answers is the team's work, not a
system setting. Saving goes through `router.core.actions.kb`, which checks the permission itself.
Preview renders exactly what `/help/{slug}` will show (sanitized), with or without JavaScript.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from router.core import kb
from router.core.actions import kb as kb_actions
from router.core.errors import Conflict, InvalidInput, NotFound
from router.core.refs import parse_ref
from router.core.refs import ref as ticket_ref
from router.core.store import kb as kb_store
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.admin.common import field, page, path_id, viewer
from router.web.inbox.i18n import LANGUAGES, register
from router.web.inbox.render import render
from router.web.inbox.session import require_agent

SECTION = "/admin/kb"
STATS_DAYS = 30
PICKER_RESULTS = 10
MAX_PICKER_QUERY = 200
NOTICES = {
    "article-created": "The article was created.",
    "article-saved": "The article was saved.",
}
"""Shown after a change (`?done=<key>`): a fixed set, so a link cannot put text on the page."""


def _kb_page(request: Request, agent: SignedIn, template: str, context: dict[str, Any], *,
             status: int = 200) -> Response:
    """An admin page of this section: leads may edit here, so controls are live for them too."""
    notice = NOTICES.get(request.query_params.get("done", ""))
    return page(request, agent, template, SECTION, {"can_edit": True,
                                                    "notice": notice, **context}, status=status)


async def kb_list(request: Request) -> Response:
    agent = await viewer(request)
    since = services(request).clock() - timedelta(days=STATS_DAYS)
    async with services(request).require_pool().acquire() as conn:
        listed = await kb_store.list_all(conn, since)
    return _kb_page(request, agent, "admin_kb.html", {"listed": listed, "days": STATS_DAYS})


def _typed(form: FormData) -> dict[str, Any]:
    return {"slug": field(form, "slug"), "title": field(form, "title"), "body": field(form, "body"),
            "language": field(form, "language"), "topic": field(form, "topic"), "tags": field(form, "tags"),
            "published": field(form, "published") == "on"}


def _languages(*extra: str) -> list[str]:
    return sorted({*LANGUAGES, *(language for language in extra if language)})


def _form_page(request: Request, agent: SignedIn, article_id: int | None, values: dict[str, Any], *,
               error: str | None = None, preview: str | None = None, status: int = 200) -> Response:
    return _kb_page(request, agent, "admin_kb_form.html", {
        "article_id": article_id, "values": values, "error": error, "preview": preview,
        "languages": _languages(values.get("language", ""))}, status=status)


async def _form(request: Request) -> tuple[SignedIn, dict[str, Any], bool]:
    """The lead or admin sending the editor's form (CSRF checked), what they typed, and whether
    they asked for a preview rather than a save."""
    agent = await viewer(request)
    form = await request.form(max_files=0, max_fields=50)
    return agent, _typed(form), field(form, "action") == "preview"


async def new_article_page(request: Request) -> Response:
    agent = await viewer(request)
    language = agent.ui_language if agent.ui_language in LANGUAGES else "en"
    return _form_page(request, agent, None, {"slug": "", "title": "", "body": "", "language": language,
                                             "topic": "", "tags": "", "published": False})


async def create_article(request: Request) -> Response:
    agent, values, preview = await _form(request)
    if preview:
        return _form_page(request, agent, None, values, preview=kb.render_markdown(values["body"]))
    try:
        article_id = await kb_actions.create_article(
            services(request).actions(), agent.identity, slug=values["slug"], title=values["title"],
            body=values["body"], language=values["language"], topic=values["topic"],
            tags=kb.split_tags(values["tags"]), published=values["published"])
    except (InvalidInput, Conflict) as exc:
        return _form_page(request, agent, None, values, error=exc.detail, status=exc.status)
    return RedirectResponse(f"{SECTION}/{article_id}?done=article-created", status_code=303)


async def article_page(request: Request) -> Response:
    agent = await viewer(request)
    article_id = path_id(request, "article_id")
    async with services(request).require_pool().acquire() as conn:
        article = await kb_store.get(conn, article_id)
    if article is None:
        raise NotFound(f"no article {article_id}")
    return _form_page(request, agent, article_id, {
        "slug": article.slug, "title": article.title, "body": article.body, "language": article.language,
        "topic": article.topic or "", "tags": ", ".join(article.tags), "published": article.published})


async def save_article(request: Request) -> Response:
    agent, values, preview = await _form(request)
    article_id = path_id(request, "article_id")
    async with services(request).require_pool().acquire() as conn:
        current = await kb_store.get(conn, article_id)
    if current is None:
        raise NotFound(f"no article {article_id}")
    values["slug"] = current.slug  # fixed at creation: links already sent keep working
    if preview:
        return _form_page(request, agent, article_id, values, preview=kb.render_markdown(values["body"]))
    try:
        await kb_actions.update_article(
            services(request).actions(), agent.identity, article_id, title=values["title"], body=values["body"],
            language=values["language"], topic=values["topic"], tags=kb.split_tags(values["tags"]),
            published=values["published"])
    except InvalidInput as exc:
        return _form_page(request, agent, article_id, values, error=exc.detail, status=exc.status)
    return RedirectResponse(f"{SECTION}/{article_id}?done=article-saved", status_code=303)


async def preview_fragment(request: Request) -> Response:
    """The preview alone, for the editor's htmx button: the page stays as typed."""
    agent, values, _ = await _form(request)
    return render(request, agent, "admin_kb_preview.html", {"preview": kb.render_markdown(values["body"])})


async def article_links(request: Request) -> Response:
    """Articles an agent can link in a reply: the search results (or the newest in the ticket's
    language), as a fragment for the ticket page's picker or, without JavaScript, a page to copy from."""
    agent = await require_agent(request)
    q = request.query_params.get("q", "").strip()[:MAX_PICKER_QUERY]
    wanted = request.query_params.get("lang", "")
    try:
        language = kb.check_language(wanted) if wanted else None
    except InvalidInput:
        language = None
    number = parse_ref(request.query_params.get("ref"))
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        if q:
            found = [(s.slug, s.title, s.language) for s in await kb.suggest(conn, q, language, PICKER_RESULTS)]
        else:
            articles = await kb_store.list_published(conn, language)
            found = [(a.slug, a.title, a.language) for a in articles[:PICKER_RESULTS]]
    base = svc.config.settings.public_url
    links = [{"title": title, "language": lang, "url": kb.suggestion_url(base, slug)} for slug, title, lang in found]
    fragment = request.headers.get("hx-request") == "true"
    return render(request, agent, "help_picker_results.html" if fragment else "help_picker_page.html",
                  {"links": links, "q": q, "ref": ticket_ref(number) if number else "", "language": language or ""})


routes = [
    Route("/admin/kb", kb_list, methods=["GET"]),
    Route("/admin/kb", create_article, methods=["POST"]),
    Route("/admin/kb/new", new_article_page, methods=["GET"]),
    Route("/admin/kb/preview", preview_fragment, methods=["POST"]),
    Route("/admin/kb/{article_id:int}", article_page, methods=["GET"]),
    Route("/admin/kb/{article_id:int}", save_article, methods=["POST"]),
    Route("/inbox/kb/links", article_links, methods=["GET"]),
]

register({
    "Knowledge base": "ナレッジベース",
    "New article": "新しい記事",
    "Edit article": "記事を編集",
    "The article was created.": "記事を作成しました。",
    "The article was saved.": "記事を保存しました。",
    "Articles customers find at /help, and that the chat widget, the web form and acks suggest.":
        "お客様が /help で読める記事です。チャットウィジェット、Web フォーム、自動返信でも提案されます。",
    "Title": "タイトル",
    "Topic": "トピック",
    "Tags": "タグ",
    "Status": "状態",
    "Published": "公開中",
    "Draft": "下書き",
    "Shown": "表示回数",
    "Solved": "解決",
    "Deflection": "自己解決率",
    "Last {days} days: how often each article was suggested, and how often a customer said it solved "
    "their problem.": "過去 {days} 日間に各記事が提案された回数と、お客様が「解決した」と答えた回数です。",
    "No articles yet.": "まだ記事がありません。",
    "Address": "アドレス",
    "Lower-case letters, digits and hyphens; fixed once the article exists.":
        "英小文字・数字・ハイフン。作成後は変更できません。",
    "Separate tags with commas.": "タグはカンマで区切ってください。",
    "Body (Markdown)": "本文（Markdown）",
    "Published at /help (unpublished articles are only seen here)":
        "/help に公開する（非公開の記事はこの画面でのみ表示されます）",
    "Preview": "プレビュー",
    "Save": "保存",
    "View at /help": "/help で表示",
    "What customers will see (links and formatting checked; scripts removed).":
        "お客様に表示される内容です（リンクと書式は確認済み、スクリプトは削除されます）。",
    "Insert a help article link": "ヘルプ記事のリンクを挿入",
    "Search articles": "記事を検索",
    "Find": "検索",
    "Insert link": "リンクを挿入",
    "No matching articles.": "該当する記事がありません。",
    "Help article links": "ヘルプ記事のリンク",
    "Copy a link into your reply.": "リンクをコピーして返信に貼り付けてください。",
    "Back to {ref}": "{ref} に戻る",
    "Language": "言語",
})
