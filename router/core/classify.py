"""Pure classification of an inbound message: language, topic (→ required skill, team) and priority."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from router.config import Topic
from router.core.refs import Priority, priority_rank

_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Classification:
    language: str
    topic: str | None
    skill: str | None
    team: str | None
    priority: Priority


def detect_language(text: str) -> str:
    """`ja` when the text is written in Japanese script, else `en`.

    Kana is decisive (only Japanese uses it); kanji without kana still counts as Japanese when it
    outweighs Latin letters, because this product's CJK market is Japan.
    """
    sample = text[:4000]
    if _KANA.search(sample):
        return "ja"
    if not _CJK.search(sample):  # most English mail: no need to count every Latin letter
        return "en"
    return "ja" if len(_CJK.findall(sample)) * 2 >= len(_LATIN.findall(sample)) else "en"


@lru_cache(maxsize=1024)
def _word_pattern(word: str) -> re.Pattern[str]:
    """Latin keywords match at a word start ("refund" matches "refunds", not "prerefund");
    Japanese keywords match anywhere, as Japanese has no spaces between words."""
    if word.isascii():
        return re.compile(r"(?<![a-z0-9])" + re.escape(word), re.IGNORECASE)
    return re.compile(re.escape(word))


def normalize(text: str) -> str:
    """The form keyword matching works on: NFKC (full-width Latin and half-width kana fold) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _hits(word: str, text: str) -> int:
    """How often the (lower-case) keyword occurs in the normalized text. Most keywords are absent
    from most mail: a plain substring test (C speed) answers those, and only a keyword that is there
    pays for the boundary-aware regex (a lookbehind with IGNORECASE defeats the regex engine's
    literal search: it tried every position, which made keyword matching the costliest step of
    classifying a 3 KB mail)."""
    if word not in text:
        return 0
    return len(_word_pattern(word).findall(text))


def match_topic(text: str, topics: Sequence[Topic]) -> Topic | None:
    """The topic with the most keyword/pattern hits in `normalize`d text; ties go to the one listed
    first in config."""
    best: Topic | None = None
    best_hits = 0
    for topic in topics:
        hits = sum(_hits(word, text) for word in topic.keywords)
        hits += sum(len(pattern.findall(text)) for pattern in topic.patterns)
        if hits > best_hits:
            best, best_hits = topic, hits
    return best


def priority_for(text: str, topic: Topic | None, tier: str | None, urgent_words: Sequence[str]) -> Priority:
    """Urgency words in `normalize`d text make a ticket urgent; a VIP customer is at least high;
    else the topic's default."""
    if any(word in text and _word_pattern(word).search(text) for word in urgent_words):
        return "urgent"
    base: Priority = topic.priority if topic and topic.priority else "normal"
    if tier == "vip" and priority_rank(base) < priority_rank("high"):
        return "high"
    return base


def classify(subject: str | None, text: str, topics: Sequence[Topic], urgent_words: Sequence[str],
             tier: str | None = None) -> Classification:
    combined = normalize(f"{subject or ''}\n{text}")
    topic = match_topic(combined, topics)
    return Classification(
        language=detect_language(f"{subject or ''}\n{text}"),
        topic=topic.name if topic else None,
        skill=topic.skill if topic else None,
        team=topic.team if topic else None,
        priority=priority_for(combined, topic, tier, urgent_words),
    )
