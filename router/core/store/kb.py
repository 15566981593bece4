"""The knowledge base's tables: the only writer of `kb_articles`, `kb_feedback` and `kb_shown`.

Validation, permissions and search terms are the caller's (`router.core.kb`, `router.core.actions.kb`);
this module stores what it is given and ranks suggestions in one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

_COLUMNS = "id, slug, title, body, language, topic, tags, published, created_at, updated_at"


@dataclass(frozen=True)
class Article:
    id: int
    slug: str
    title: str
    body: str
    language: str
    topic: str | None
    tags: tuple[str, ...]
    published: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Listed:
    """An article in the editor's list, with how it did over the period asked for."""

    article: Article
    shown: int
    solved: int


@dataclass(frozen=True)
class Suggestion:
    slug: str
    title: str
    language: str
    score: int


def _article(row: asyncpg.Record) -> Article:
    return Article(id=row["id"], slug=row["slug"], title=row["title"], body=row["body"], language=row["language"],
                   topic=row["topic"], tags=tuple(row["tags"]), published=row["published"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


async def create(conn: asyncpg.Connection, *, slug: str, title: str, body: str, language: str, topic: str | None,
                 tags: Sequence[str], published: bool, terms: Sequence[str], title_terms: Sequence[str],
                 actor_id: int | None, now: datetime) -> int | None:
    """The new article's id, or None when the slug is taken."""
    article_id: int | None = await conn.fetchval(
        "INSERT INTO kb_articles (slug, title, body, language, topic, tags, published, terms, title_terms,"
        " created_by, updated_by, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $11)"
        " ON CONFLICT (slug) DO NOTHING RETURNING id",
        slug, title, body, language, topic, list(tags), published, list(terms), list(title_terms), actor_id, now)
    return article_id


async def update(conn: asyncpg.Connection, article_id: int, *, title: str, body: str, language: str,
                 topic: str | None, tags: Sequence[str], published: bool, terms: Sequence[str],
                 title_terms: Sequence[str], actor_id: int | None, now: datetime) -> bool:
    """False when there is no such article. The slug never changes: links already sent keep working."""
    result: str = await conn.execute(
        "UPDATE kb_articles SET title = $2, body = $3, language = $4, topic = $5, tags = $6, published = $7,"
        " terms = $8, title_terms = $9, updated_by = $10, updated_at = $11 WHERE id = $1",
        article_id, title, body, language, topic, list(tags), published, list(terms), list(title_terms),
        actor_id, now)
    return result != "UPDATE 0"


async def get(conn: asyncpg.Connection, article_id: int) -> Article | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM kb_articles WHERE id = $1", article_id)
    return _article(row) if row else None


async def published(conn: asyncpg.Connection, slug: str) -> Article | None:
    """The published article at /help/{slug}; an unpublished one is not there."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM kb_articles WHERE slug = $1 AND published", slug)
    return _article(row) if row else None


async def published_id(conn: asyncpg.Connection, slug: str) -> int | None:
    found: int | None = await conn.fetchval("SELECT id FROM kb_articles WHERE slug = $1 AND published", slug)
    return found


async def list_published(conn: asyncpg.Connection, language: str | None) -> list[Article]:
    """Published articles (in `language`, or all), by topic then title."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM kb_articles WHERE published AND ($1::text IS NULL OR language = $1)"
        " ORDER BY topic NULLS LAST, lower(title), id", language)
    return [_article(row) for row in rows]


async def list_all(conn: asyncpg.Connection, since: datetime) -> list[Listed]:
    """Every article, newest edit first, with its suggestions shown (from `since`'s UTC day) and
    problems solved since `since`."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS},"
        " COALESCE((SELECT sum(s.shown) FROM kb_shown s WHERE s.article_id = a.id"
        "  AND s.day >= ($1::timestamptz AT TIME ZONE 'UTC')::date), 0) AS shown,"
        " (SELECT count(*) FROM kb_feedback f WHERE f.article_id = a.id AND f.solved"
        "  AND f.created_at >= $1) AS solved"
        " FROM kb_articles a ORDER BY updated_at DESC, id DESC", since)
    return [Listed(_article(row), int(row["shown"]), int(row["solved"])) for row in rows]


async def suggest(conn: asyncpg.Connection, terms: Sequence[str], language: str | None, limit: int, *,
                  title_weight: int = 3, body_weight: int = 1, min_score: int = 2) -> list[Suggestion]:
    """The published articles best matching `terms`: `title_weight` per term in the title, topic or
    tags, `body_weight` per term only in the body; at least `min_score` (or the one term of a
    one-term query); articles in `language` first, then the higher score, then the newer edit."""
    rows = await conn.fetch(
        "SELECT slug, title, language, score FROM ("
        "  SELECT a.slug, a.title, a.language, a.updated_at, a.id,"
        "   (SELECT count(*) FROM unnest($1::text[]) t WHERE t = ANY(a.title_terms)) * $3"
        "   + (SELECT count(*) FROM unnest($1::text[]) t WHERE t = ANY(a.terms) AND t <> ALL(a.title_terms)) * $4"
        "   AS score"
        "  FROM kb_articles a WHERE a.published AND a.terms && $1::text[]"
        " ) ranked WHERE score >= LEAST($5, cardinality($1::text[]))"
        " ORDER BY language = $2 DESC NULLS LAST, score DESC, updated_at DESC, id DESC LIMIT $6",
        list(terms), language, title_weight, body_weight, min_score, limit)
    return [Suggestion(row["slug"], row["title"], row["language"], row["score"]) for row in rows]


async def record_solved(conn: asyncpg.Connection, article_id: int, source: str, now: datetime) -> None:
    await conn.execute("INSERT INTO kb_feedback (article_id, source, solved, created_at) VALUES ($1, $2, true, $3)",
                       article_id, source, now)


async def record_shown(conn: asyncpg.Connection, slugs: Sequence[str], source: str, day: date) -> None:
    """Count one showing of each article in `slugs` on `day` (UTC)."""
    await conn.execute(
        "INSERT INTO kb_shown (article_id, source, day, shown)"
        " SELECT id, $2, $3, 1 FROM kb_articles WHERE slug = ANY($1::text[])"
        " ON CONFLICT (article_id, source, day) DO UPDATE SET shown = kb_shown.shown + 1",
        list(slugs), source, day)


async def deflection(conn: asyncpg.Connection, since: datetime, until: datetime) -> tuple[int, int]:
    """(suggestions shown, problems solved) in [since, until): deflection rate = solved / shown.
    `kb_shown` counts per UTC day, so for it the period covers the UTC days it touches."""
    row = await conn.fetchrow(
        "SELECT COALESCE((SELECT sum(shown) FROM kb_shown WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date"
        "   AND day <= (($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date), 0) AS shown,"
        " (SELECT count(*) FROM kb_feedback WHERE solved AND created_at >= $1 AND created_at < $2) AS solved",
        since, until)
    return int(row["shown"]), int(row["solved"])
