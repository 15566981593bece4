"""The ack's `{suggestions}`: the best-matching published articles, only when a template uses it."""

from __future__ import annotations

import json

import pytest

from router.config import Config, Settings, demo_config_text, parse_config
from router.core import kb
from router.core.inbound import Identity, InboundMessage
from tests.conftest import post_message

TEMPLATES = """
[templates.ack]
ja = "受付番号 {ref}（{due}まで）\\n{suggestions}"
en = "Got it: {ref}, by {due}.\\n{suggestions}"

[templates.ack_no_due]
en = "Got it: {ref}.\\n{suggestions}"
"""


@pytest.fixture
def config(settings: Settings) -> Config:
    return parse_config(demo_config_text() + TEMPLATES, settings, source="router.toml")


async def ack_text(pool) -> str:
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'ack'")
    return str((json.loads(payload) if isinstance(payload, str) else payload)["text"])


async def test_ack_lists_the_matching_articles_in_the_customers_language(client, auth, pool, articles):
    await post_message(client, auth, "返金の方法を教えてください。注文番号は 1234 です。", email="taro@example.net",
                       subject="返金について")
    text = await ack_text(pool)
    assert text.startswith("受付番号 T-")
    assert "- 返金の手続きについて: http://127.0.0.1:8000/help/refund-ja" in text
    assert "draft-refund" not in text and "/help/refund\n" not in text


async def test_ack_without_a_match_leaves_the_placeholder_empty(client, auth, pool, articles):
    await post_message(client, auth, "Hi team, the widget turned purple overnight.", email="amy@example.net",
                       subject="Colour")
    text = await ack_text(pool)
    assert text.startswith("Got it: T-") and "/help/" not in text and not text.endswith("{suggestions}")


async def test_templates_without_the_placeholder_never_query(settings):
    plain = parse_config(demo_config_text(), settings)
    message = InboundMessage(channel="email", identities=(Identity("email", "a@example.net"),), text="返金")
    # No connection at all: the function must answer without one.
    assert await kb.ack_templates(None, plain, message, "ja") is plain.templates  # type: ignore[arg-type]
