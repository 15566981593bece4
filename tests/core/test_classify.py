"""Keyword classification: Latin keywords match at a word start in any case or width, Japanese ones
anywhere; the most hits wins, ties go to the topic listed first; urgency words make a ticket urgent.
The substring screen in front of the regexes changes no answer (checked against the plain per-keyword
regex count on generated text)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from router.config import Topic
from router.core.classify import classify, detect_language, match_topic, normalize

TOPICS = (
    Topic("billing", "billing", keywords=("invoice", "refund", "charge", "請求", "返金")),
    Topic("technical", "technical", keywords=("error", "login", "エラー", "ログイン"), priority="high"),
    Topic("orders", None, patterns=(re.compile(r"order #\d+"),)),
)
URGENT = ("urgent", "至急")


def reference_topic(text: str, topics: tuple[Topic, ...]) -> Topic | None:
    """Every keyword's regex over the whole text, as before the substring screen."""
    best, best_hits = None, 0
    for topic in topics:
        hits = 0
        for word in topic.keywords:
            pattern = (re.compile(r"(?<![a-z0-9])" + re.escape(word), re.IGNORECASE) if word.isascii()
                       else re.compile(re.escape(word)))
            hits += len(pattern.findall(text))
        hits += sum(len(pattern.findall(text)) for pattern in topic.patterns)
        if hits > best_hits:
            best, best_hits = topic, hits
    return best


def test_latin_keywords_match_at_word_starts_in_any_case_and_width():
    assert classify("REFUND please", "", TOPICS, URGENT).topic == "billing"
    assert classify(None, "ｒｅｆｕｎｄｓ for my order", TOPICS, URGENT).topic == "billing"  # full-width
    assert classify(None, "a prerefund discount", TOPICS, URGENT).topic is None
    assert classify(None, "Login ERROR after the update", TOPICS, URGENT).priority == "high"


def test_japanese_keywords_match_inside_words_and_the_most_hits_win():
    found = classify("ログインできません", "ログイン画面でエラーが出ます。請求とは関係ありません。", TOPICS, URGENT)
    assert (found.language, found.topic, found.skill) == ("ja", "technical", "technical")
    assert classify(None, "請求 error", TOPICS, URGENT).topic == "billing"  # a tie: the first listed


def test_patterns_and_urgency():
    assert classify(None, "Where is order #123?", TOPICS, URGENT).topic == "orders"
    assert classify(None, "至急ご確認ください", TOPICS, URGENT).priority == "urgent"
    assert classify(None, "URGENT: the invoice", TOPICS, URGENT).priority == "urgent"
    assert classify(None, "not insurgent at all", TOPICS, URGENT).priority == "normal"


def test_language():
    assert detect_language("Hello, my invoice is wrong") == "en"
    assert detect_language("請求書番号 invoice") == "ja"  # kanji outweigh the Latin letters
    assert detect_language("Invoice number 請求 for the account of my company") == "en"


words = st.sampled_from(["invoice", "Refund", "REFUNDS", "prerefund", "charge", "請求", "返金", "error", "login",
                         "エラー", "ログイン", "order #12", "x", " ", "\n", "ｒｅｆｕｎｄ", "3error", "_login"])


@given(st.lists(words, max_size=40).map("".join))
def test_the_substring_screen_changes_no_answer(text):
    normalized = normalize(text)
    assert match_topic(normalized, TOPICS) == reference_topic(normalized, TOPICS)
