"""The Telegram adapter, pure: (headers, raw body, secret token) → verified messages.

Fixtures follow the Bot API's `Update` objects (the webhook guide's sample updates)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from channels.base import RawRequest
from channels.telegram.adapter import TelegramSecrets, parse
from router.core.errors import MalformedBody, Unauthorized
from router.core.inbound import Identity

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-secret_token-1"


def read(name: str, token: str | None = SECRET):
    headers = {"x-telegram-bot-api-secret-token": token} if token is not None else {}
    return parse(RawRequest(headers, (FIXTURES / name).read_bytes()), TelegramSecrets(SECRET))


def test_a_private_message_is_from_the_telegram_user() -> None:
    [message] = read("message_text.json")
    assert message.channel == "telegram"
    assert message.identities == (Identity("telegram", "1111111"),)
    assert message.claims == ()
    assert (message.text, message.external_id) == ("My order has not arrived", "1111111:1365")
    assert message.sender_name == "Test Firstname Test Lastname"
    assert message.metadata == {"username": "Testusername"}


def test_an_edit_is_a_message_of_its_own_marked_as_an_edit() -> None:
    [edit] = read("edited_message.json")
    [original] = read("message_text.json")
    assert edit.text == "(edited) My order #4711 has not arrived"
    assert edit.external_id not in (original.external_id, None)  # not mistaken for a redelivery
    assert edit.identities == original.identities


def test_photos_and_files_are_noted_and_referenced_by_file_id() -> None:
    [photo] = read("photo_with_caption.json")
    assert photo.text == "The box was damaged\n[image]"
    assert photo.metadata["attachments"] == [{"type": "photo", "file_id": "AgACAgIAAxkBAAIBXmLarge"}]
    [document] = read("document.json")
    assert document.text == "[file: invoice.pdf]"
    assert document.metadata["attachments"][0]["mime_type"] == "application/pdf"


def test_a_shared_contact_is_only_a_claim_of_a_phone_number() -> None:
    [message] = read("contact.json")
    assert message.identities == (Identity("telegram", "1111111"),)
    assert message.claims == (Identity("phone", "+819012345678"),)
    assert message.text == "[contact: Hanako Yamada, +81 90-1234-5678]"


def test_bots_groups_and_other_updates_are_acknowledged_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="channels.telegram.adapter"):
        assert read("from_a_bot.json") == []  # never answer another bot: it would answer back
        assert read("group_message.json") == []
        assert read("callback_query.json") == []
    assert "from a bot" in caplog.text and "'supergroup' chat" in caplog.text and "'callback_query'" in caplog.text


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
def test_a_missing_or_wrong_secret_token_is_refused(token: str | None) -> None:
    with pytest.raises(Unauthorized, match="X-Telegram-Bot-Api-Secret-Token"):
        read("message_text.json", token)


def test_the_secret_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(Unauthorized):
        parse(RawRequest({}, b"{not json"), TelegramSecrets(SECRET))
    with pytest.raises(MalformedBody):
        parse(RawRequest({"x-telegram-bot-api-secret-token": SECRET}, b"{not json"), TelegramSecrets(SECRET))
