"""The platforms' rules, pure: the 24-hour windows, message lengths, what a sender needs to answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.channel_rules import REPLY_WINDOW, Available, Unavailable, availability, reply_context, too_long

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram"])
def test_inside_the_24_hours_a_free_form_reply_is_available_until_the_window_closes(channel):
    last = NOW - timedelta(hours=23, minutes=59)
    assert availability(channel, last, NOW) == Available(until=last + timedelta(hours=24))


@pytest.mark.parametrize(("channel", "name"), [("whatsapp", "WhatsApp"), ("messenger", "Messenger"),
                                               ("instagram", "Instagram")])
def test_after_24_hours_the_rule_is_named_with_the_time_of_the_last_message(channel, name):
    last = NOW - timedelta(hours=30)
    ruling = availability(channel, last, NOW)
    assert isinstance(ruling, Unavailable)
    assert (ruling.rule, ruling.last_customer_message_at) == ("window_closed", last)
    assert ruling.reason == (f"{name} allows free-form replies only within 24 hours of the customer's last {name}"
                             " message; their last one was 30 hours ago (2026-11-23 19:00 UTC)")


def test_exactly_24_hours_later_the_window_is_closed():
    assert isinstance(availability("whatsapp", NOW - REPLY_WINDOW, NOW), Unavailable)


def test_a_customer_who_never_wrote_there_cannot_be_written_to_first():
    ruling = availability("whatsapp", None, NOW)
    assert isinstance(ruling, Unavailable) and ruling.rule == "never_wrote"
    assert "never written on WhatsApp" in ruling.reason


@pytest.mark.parametrize("channel", ["email", "line", "telegram", "chat", "api"])
def test_channels_without_a_window_are_always_available(channel):
    assert availability(channel, None, NOW) == Available()
    assert availability(channel, NOW - timedelta(days=300), NOW) == Available()


@given(age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_the_window_is_open_exactly_while_less_than_24_hours_have_passed(age):
    ruling = availability("messenger", NOW - age, NOW)
    assert isinstance(ruling, Available) == (age < REPLY_WINDOW)


def test_texts_longer_than_the_platform_takes_are_named():
    assert too_long("messenger", "x" * 2000) is None
    assert too_long("messenger", "x" * 2001) == (
        "a Messenger message holds at most 2000 characters and this one has 2001")
    assert too_long("instagram", "x" * 1001) is not None
    assert too_long("email", "x" * 100_000) is None


def test_reply_context_keeps_what_each_sender_needs():
    received = NOW - timedelta(seconds=5)
    assert reply_context("whatsapp", {"phone_number_id": "106540352242922", "attachments": []}, received) == {
        "phone_number_id": "106540352242922", "window_closes_at": (received + timedelta(hours=24)).isoformat()}
    assert reply_context("line", {"reply_token": "nHuy"}, received) == {
        "reply_token": "nHuy", "reply_token_at": received.isoformat()}
    assert reply_context("line", {}, received) == {}
    assert reply_context("telegram", {"username": "x"}, received) == {}
