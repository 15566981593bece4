"""Writing knowledge-base articles: leads and admins (issue 13 §4), from `/admin/kb` or the API.

Each action checks the permission before anything else, validates, stores the article with its
search terms and owns its transaction. Articles are never deleted, only unpublished, so links sent
in replies fail gently (a "not found" page) and the deflection counts keep their article.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.store import AgentIdentity
from router.core import kb
from router.core.actions import Context
from router.core.errors import Conflict, Forbidden, NotFound
from router.core.store import kb as kb_store


def require_editor(actor: AgentIdentity) -> None:
    if not actor.is_lead:
        raise Forbidden("only leads and admins edit the knowledge base")


async def create_article(ctx: Context, actor: AgentIdentity, *, slug: str, title: str, body: str, language: str,
                         topic: str, tags: Iterable[str], published: bool) -> int:
    """The new article's id; Conflict when the slug is taken."""
    require_editor(actor)
    article = kb.check_article(slug=slug, title=title, body=body, language=language, topic=topic, tags=tags,
                               published=published)
    terms, title_terms = kb.article_terms(article)
    async with ctx.pool.acquire() as conn:
        article_id = await kb_store.create(
            conn, slug=article.slug, title=article.title, body=article.body, language=article.language,
            topic=article.topic, tags=article.tags, published=article.published, terms=terms,
            title_terms=title_terms, actor_id=actor.id, now=ctx.clock())
    if article_id is None:
        raise Conflict(f"an article already lives at /help/{article.slug}; choose another slug")
    return article_id


async def update_article(ctx: Context, actor: AgentIdentity, article_id: int, *, title: str, body: str,
                         language: str, topic: str, tags: Iterable[str], published: bool) -> None:
    """Save an edit; the slug stays what it was."""
    require_editor(actor)
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await kb_store.get(conn, article_id)
        if current is None:
            raise NotFound(f"no article {article_id}")
        article = kb.check_article(slug=current.slug, title=title, body=body, language=language, topic=topic,
                                   tags=tags, published=published)
        terms, title_terms = kb.article_terms(article)
        await kb_store.update(
            conn, article_id, title=article.title, body=article.body, language=article.language,
            topic=article.topic, tags=article.tags, published=article.published, terms=terms,
            title_terms=title_terms, actor_id=actor.id, now=ctx.clock())
