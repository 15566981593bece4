"""The knowledge base's pure parts: sanitized Markdown, query terms, the ack's `{suggestions}`."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from router.config import ConfigError, demo_config_text, parse_config
from router.core import kb
from router.core.errors import InvalidInput


class Elements(HTMLParser):
    """Every element and its attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def test_markdown_renders_and_script_is_removed_with_its_content():
    html = kb.render_markdown("# 返金\n\n**Bold** text\n\n<script>alert('x')</script>\n\nafter")
    assert "<h1>返金</h1>" in html and "<strong>Bold</strong>" in html and "after" in html
    assert "<script" not in html and "alert" not in html


@pytest.mark.parametrize("source", [
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<img src="x.png" onerror="alert(1)">',
    '<p onclick="alert(1)">click</p>',
    '<iframe src="https://evil.example"></iframe>',
    '<svg onload="alert(1)"></svg>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
])
def test_no_script_survives(source):
    elements = Elements()
    elements.feed(kb.render_markdown(source))
    for tag, attributes in elements.found:
        assert tag not in ("script", "iframe", "svg"), source
        for name, value in attributes:
            assert not name.startswith("on"), source
            assert not (value or "").strip().lower().startswith(("javascript:", "data:")), source


def test_links_are_marked_noopener_nofollow():
    html = kb.render_markdown("[shop](https://shop.example.com/orders)")
    assert '<a href="https://shop.example.com/orders" rel="noopener nofollow">shop</a>' in html


def test_japanese_query_keeps_words_and_drops_particle_pairs():
    assert kb.query_terms("返金の方法") == ["返金", "金の", "の方", "方法"]
    assert kb.query_terms("返金してください") == ["返金", "金し"]  # してください: hiragana pairs only


def test_english_query_drops_stop_words_unless_nothing_is_left():
    assert kb.query_terms("How do I get a refund?") == ["get", "refund"]
    assert kb.query_terms("the") == []


def test_slug_rules():
    assert kb.check_slug(" Refund-Policy ") == "refund-policy"
    for bad in ("", "refund policy", "返金", "-refund", "suggest", "a" * 101):
        with pytest.raises(InvalidInput):
            kb.check_slug(bad)


def test_tags_split_on_commas_of_both_scripts():
    assert kb.split_tags("refund, 返金、払い戻し,, refund") == ("refund", "返金", "払い戻し")


def test_suggestions_fill_only_their_placeholder_and_keep_braces_literal():
    text = kb.fill_suggestions("Ticket {ref}.\n{suggestions}\n{{literal}}", "- A {b}: https://x/help/a")
    assert text.format(ref="T-1") == "Ticket T-1.\n- A {b}: https://x/help/a\n{literal}"


def test_only_admin_templates_using_the_placeholder_cost_a_query():
    assert not kb.uses_suggestions({})
    assert not kb.uses_suggestions({"ack": {"en": "Got it {ref} {{suggestions}}"}})
    assert kb.uses_suggestions({"ack_no_due": {"ja": "受付 {ref}\n{suggestions}"}})


def test_config_accepts_suggestions_in_ack_texts_only(settings):
    ok = demo_config_text() + '\n[templates.ack]\nen = "{ref} by {due}\\n{suggestions}"\n'
    assert "{suggestions}" in parse_config(ok, settings).templates["ack"]["en"]
    bad = demo_config_text() + '\n[templates.ack_subject]\nen = "[{ref}] {suggestions}"\n'
    with pytest.raises(ConfigError, match="unknown placeholder"):
        parse_config(bad, settings)
