"""The knowledge base's domain: what an article may hold, how its Markdown becomes safe HTML, how
a customer's words become a search, and the `{suggestions}` an acknowledgement may carry.

Articles are searched with the same analyzer as messages (`router.core.search`: CJK bigrams, lower-cased
words), so `返金の方法` finds an article titled `返金の方法について` without a Japanese tokenizer.
Ranking is kept explainable (README "Self-service answers"): an article scores 3 for each query term
in its title, topic or tags and 1 for each term found only in its body; at least two points are
needed unless the query is a single term; articles in the customer's language come first.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import nh3
from markdown_it import MarkdownIt

from router.config import Config
from router.core.errors import InvalidInput, NotFound
from router.core.inbound import InboundMessage, single_line, text_value
from router.core.search import document_terms, parse_query
from router.core.store import kb as kb_store
from router.core.store.kb import Suggestion

Source = Literal["chat", "webform", "help"]
SOURCES: tuple[Source, ...] = ("chat", "webform", "help")
"""Where a suggestion was shown or a "this solved my problem" came from."""

SLUG_LIMIT = 100
TITLE_LIMIT = 200
BODY_LIMIT = 100_000
TOPIC_LIMIT = 100
MAX_TAGS = 20
TAG_LIMIT = 50
MAX_SUGGESTIONS = 3
MAX_QUERY_CHARS = 2000
"""What a suggestion looks at of what the customer typed: the first lines say what it is about."""
TITLE_WEIGHT = 3
BODY_WEIGHT = 1
MIN_SCORE = 2
RESERVED_SLUGS = frozenset({"suggest"})
"""Paths under /help that are not articles."""

_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_HIRAGANA_ONLY = re.compile(r"^[\u3040-\u309f]+$")
STOP_WORDS = frozenset("""
a an and are as at be but by can do does for from has have how i if in is it its me my of on or our so
that the this to was we what when where which who why will with you your please hi hello thanks thank
""".split())
"""English words too common to say what a question is about. Japanese needs no list: a pair of
characters that are both hiragana (`です`, `ので`, `ませ`) is dropped from queries instead."""

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_LINK_REL = "noopener nofollow"
_URL_SCHEMES = frozenset({"http", "https", "mailto"})


@dataclass(frozen=True)
class ArticleInput:
    """An article as an editor sends it, checked (`check_article`)."""

    slug: str
    title: str
    body: str
    language: str
    topic: str | None
    tags: tuple[str, ...]
    published: bool


def render_markdown(body: str) -> str:
    """Markdown → HTML safe to put in a page: rendered with raw HTML allowed (authors may use `<kbd>`
    or a table), then sanitized by nh3, which drops `<script>`/`<style>` with their content, every
    `on*` attribute and any URL but http(s)/mailto, and marks links `rel="noopener nofollow"`."""
    return nh3.clean(_markdown.render(body), link_rel=_LINK_REL, url_schemes=set(_URL_SCHEMES))


def check_slug(value: object) -> str:
    slug = (text_value(value, "slug", limit=SLUG_LIMIT, required=True) or "").strip().lower()
    if not _SLUG.match(slug):
        raise InvalidInput("`slug`: use lower-case letters, digits and hyphens, like \"refund-policy\"")
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"`slug`: {slug!r} is reserved")
    return slug


def check_language(value: object) -> str:
    tag = (text_value(value, "language", limit=35, required=True) or "").strip().lower()
    if not _LANGUAGE.match(tag):
        raise InvalidInput(f"`language`: {tag!r} is not a language code like \"ja\" or \"en\"")
    return tag


def split_tags(text: str) -> tuple[str, ...]:
    """Tags typed as "refund, 返金" (commas, Japanese commas or new lines), de-duplicated."""
    found: dict[str, None] = {}
    for part in re.split(r"[,、\n]", text):
        tag = single_line(part) or ""
        if tag:
            found.setdefault(tag)
    return tuple(found)


def check_article(*, slug: object, title: object, body: object, language: object, topic: object,
                  tags: Iterable[str], published: bool) -> ArticleInput:
    """The article, or InvalidInput naming the first field that is wrong."""
    clean_title = single_line(text_value(title, "title", limit=TITLE_LIMIT, required=True)) or ""
    if not clean_title:
        raise InvalidInput("`title` is required")
    clean_body = text_value(body, "body", limit=BODY_LIMIT) or ""
    clean_topic = single_line(text_value(topic, "topic", limit=TOPIC_LIMIT)) or None
    tag_list = tuple(tags)
    if len(tag_list) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags")
    for tag in tag_list:
        text_value(tag, "tag", limit=TAG_LIMIT)
    return ArticleInput(slug=check_slug(slug), title=clean_title, body=clean_body.replace("\r\n", "\n"),
                        language=check_language(language), topic=clean_topic, tags=tag_list,
                        published=published)


def article_terms(article: ArticleInput) -> tuple[list[str], list[str]]:
    """(all terms, title terms): what the article is found by, and the terms that weigh more."""
    heading = [article.title, article.topic, *article.tags]
    title_terms = document_terms(heading)
    return document_terms([*heading, article.body]), title_terms


def query_terms(text: str) -> list[str]:
    """The terms to look for in what a customer typed, without the words that say nothing."""
    terms = parse_query(text[:MAX_QUERY_CHARS]).terms
    kept = [t for t in terms if t not in STOP_WORDS and not _HIRAGANA_ONLY.match(t)]
    return kept or ([] if all(t in STOP_WORDS for t in terms) else list(terms))


async def suggest(conn: asyncpg.Connection, text: str, language: str | None,
                  limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
    """The published articles that best answer `text` (see the module's docstring for the ranking)."""
    terms = query_terms(text)
    if not terms:
        return []
    return await kb_store.suggest(conn, terms, language, limit, title_weight=TITLE_WEIGHT,
                                  body_weight=BODY_WEIGHT, min_score=MIN_SCORE)


def check_source(value: object) -> Source:
    for source in SOURCES:
        if value == source:
            return source
    raise InvalidInput(f"`source` must be one of {', '.join(SOURCES)}")


async def record_solved(conn: asyncpg.Connection, slug: str, source: Source, now: datetime) -> None:
    """Count "this solved my problem" for the published article at `slug`, else NotFound."""
    article_id = await kb_store.published_id(conn, slug)
    if article_id is None:
        raise NotFound(f"no article {slug!r}")
    await kb_store.record_solved(conn, article_id, source, now)


def suggestion_url(base_url: str, slug: str) -> str:
    return f"{base_url}/help/{slug}"


def suggestions_text(found: Iterable[Suggestion], base_url: str) -> str:
    """The `{suggestions}` of an ack: one "title: URL" line per article, or nothing."""
    return "\n".join(f"- {item.title}: {suggestion_url(base_url, item.slug)}" for item in found)


SUGGESTION_TEMPLATES = ("ack", "ack_no_due")
"""The ack texts that may use `{suggestions}` (router.config.TEMPLATE_FIELDS)."""


def uses_suggestions(templates: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether an admin-edited ack text uses `{suggestions}` (the built-in ones never do), checked
    without a query so the ingest path pays nothing when it is unused."""
    return any("suggestions" in text and "suggestions" in _fields(text)
               for name in SUGGESTION_TEMPLATES for text in templates.get(name, {}).values())


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def fill_suggestions(text: str, value: str) -> str:
    """`text` with `{suggestions}` replaced by `value`, every other placeholder left for `format`.
    Braces in `value` (an article title may hold one) are escaped so `format` prints them as they are."""
    escaped = value.replace("{", "{{").replace("}", "}}")
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name == "suggestions":
            out.append(escaped)
        else:
            out.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


async def ack_templates(conn: asyncpg.Connection, config: Config, message: InboundMessage,
                        language: str) -> Mapping[str, Mapping[str, str]]:
    """The ack templates with `{suggestions}` filled for this message: the best-matching published
    articles (customer's language first). When no template uses it, `config.templates` as it is,
    without touching the database."""
    if not uses_suggestions(config.templates):
        return config.templates
    found = await suggest(conn, " ".join(filter(None, (message.subject, message.text))), language)
    value = suggestions_text(found, config.settings.public_url)
    return {name: ({lang: fill_suggestions(text, value) for lang, text in texts.items()}
                   if name in SUGGESTION_TEMPLATES else texts)
            for name, texts in config.templates.items()}
