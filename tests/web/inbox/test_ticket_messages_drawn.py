"""Drawn messages are kept between pages (`ticket_messages._DRAWN`): a kept drawing must never show
what has changed since, nor leak into another language, timezone or ticket."""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime

from router.core.inbound import MAX_TEXT_CHARS
from router.core.store.timeline import Delivery, Message
from router.web.inbox import ticket_messages
from router.web.inbox.i18n import translate
from router.web.inbox.ticket_messages import MessageHtml
from router.web.inbox.ticket_words import names

SENT_AT = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
REPLY = Message(id=7, channel="email", direction="out", sender_name=None, sender_address=None,
                sender_verified=None, author_name="Aiko", subject="Refund", text="We refunded it.", quoted_text=None,
                has_html=False, auto_kind=None, kind="reply", created_at=SENT_AT,
                delivery=Delivery("pending", 0, None, None, "kim@example.net", None))


def draw(message: Message, *, ref: str = "T-1001", language: str = "en", timezone: str = "Asia/Tokyo") -> str:
    page = MessageHtml(ref, names(language), functools.partial(translate, language), timezone, language)
    return str(page.many([message]))


def test_a_delivery_that_changed_is_drawn_again() -> None:
    assert "Queued" in draw(REPLY)
    sent = replace(REPLY, delivery=replace(REPLY.delivery, status="sent", sent_at=SENT_AT))
    assert "Queued" not in draw(sent) and "Sent" in draw(sent)


def test_each_language_timezone_and_ticket_gets_its_own_drawing() -> None:
    english = draw(REPLY)
    assert "Queued" in english
    assert "送信待ち" in draw(REPLY, language="ja") and "Queued" not in draw(REPLY, language="ja")
    assert "2026-11-25 10:00" in english  # Tokyo
    assert "2026-11-25 01:00" in draw(REPLY, timezone="UTC")
    with_html = replace(REPLY, has_html=True)
    assert "/inbox/T-1001/messages/7/html" in draw(with_html)
    assert "/inbox/T-2002/messages/7/html" in draw(with_html, ref="T-2002")  # merged into another ticket


def test_kept_drawings_stay_within_their_budget_and_the_least_recently_drawn_go_first(monkeypatch) -> None:
    monkeypatch.setattr(ticket_messages, "_DRAWN", OrderedDict())
    monkeypatch.setattr(ticket_messages, "_drawn_chars", 0)
    budget = 5 * ticket_messages._cost(REPLY, draw(REPLY)) + 10  # room for five of these messages
    monkeypatch.setattr(ticket_messages, "_DRAWN", OrderedDict())
    monkeypatch.setattr(ticket_messages, "_drawn_chars", 0)
    monkeypatch.setattr(ticket_messages, "DRAWN_BUDGET_CHARS", budget)
    messages = [replace(REPLY, id=n) for n in range(7)]
    for message in messages[:5]:
        draw(message)
    draw(messages[0])  # drawn again: now the most recently used
    for message in messages[5:]:
        draw(message)
    assert [key[3].id for key in ticket_messages._DRAWN] == [3, 4, 0, 5, 6]
    assert ticket_messages._drawn_chars == sum(ticket_messages._cost(key[3], html)
                                               for key, html in ticket_messages._DRAWN.items()) <= budget


def test_a_huge_message_is_drawn_but_not_kept(monkeypatch) -> None:
    """Pasted logs (up to 200,000 characters, `<` escaped fourfold) would crowd out hundreds of others."""
    monkeypatch.setattr(ticket_messages, "_DRAWN", OrderedDict())
    monkeypatch.setattr(ticket_messages, "_drawn_chars", 0)
    huge = replace(REPLY, id=99, text="<" * MAX_TEXT_CHARS)
    assert "&lt;" * 100 in draw(huge)
    assert not ticket_messages._DRAWN
