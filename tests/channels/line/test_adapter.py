"""The LINE adapter, pure: (headers, raw body, channel secret) → verified messages.

Fixtures follow the webhook event objects of the Messaging API reference; the signature is checked
against LINE's documented example."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from channels.base import RawRequest
from channels.line.adapter import LineSecrets, parse, signature
from router.core.errors import MalformedBody, Unauthorized
from router.core.inbound import Identity

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-channel-secret"


def request(name: str, secret: str = SECRET) -> RawRequest:
    body = (FIXTURES / name).read_bytes()
    return RawRequest({"x-line-signature": signature(body, secret)}, body)


def test_the_signature_matches_the_published_example() -> None:
    assert signature(b"bodybodybodybody", "channel_secret") == "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="


def test_a_text_message_is_from_the_line_user_and_keeps_its_reply_token() -> None:
    [message] = parse(request("text_message.json"), LineSecrets(SECRET))
    assert message.channel == "line"
    assert message.identities == (Identity("line", "U4af4980629f5fbc3d7d0b0c0b0f3d9a1"),)
    assert (message.text, message.external_id) == ("請求書が届いていません (love)", "444573844083572737")
    assert message.metadata == {"reply_token": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"}


def test_media_files_locations_and_stickers_are_noted_and_referenced() -> None:
    image, file, location, sticker = parse(request("media_messages.json"), LineSecrets(SECRET))
    assert image.text == "[image]"
    assert image.metadata["attachments"] == [{"type": "image", "message_id": "354718705033693859"}]
    assert image.metadata["reply_token"] == "0f3779fba3b349968c5d07db31eab56f"
    assert file.text == "[file: receipt.pdf]"
    assert location.text == "[location: my location, 〒102-8282 東京都千代田区紀尾井町1番3号, 35.67966, 139.73669]"
    assert sticker.text == "[sticker: happy, smile, yay]"


def test_follows_group_chats_and_unknown_events_are_acknowledged_with_a_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="channels.line.adapter"):
        assert parse(request("other_events.json"), LineSecrets(SECRET)) == []
    assert "'follow' event" in caplog.text and "'group' chat" in caplog.text and "'unsend' event" in caplog.text


def test_the_url_check_holds_no_event_and_a_redelivery_is_the_same_message() -> None:
    assert parse(request("url_check.json"), LineSecrets(SECRET)) == []
    [again] = parse(request("redelivery.json"), LineSecrets(SECRET))
    [first] = parse(request("text_message.json"), LineSecrets(SECRET))
    assert again.external_id == first.external_id  # the pipeline stores it once
    assert "reply_token" not in again.metadata


@pytest.mark.parametrize("header", [None, "", "not base64", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="])
def test_a_missing_or_wrong_signature_is_refused(header: str | None) -> None:
    body = (FIXTURES / "text_message.json").read_bytes()
    with pytest.raises(Unauthorized, match="X-Line-Signature"):
        parse(RawRequest({"x-line-signature": header} if header is not None else {}, body), LineSecrets(SECRET))


def test_a_tampered_body_or_another_secret_fails() -> None:
    body = (FIXTURES / "text_message.json").read_bytes()
    with pytest.raises(Unauthorized):
        parse(RawRequest({"x-line-signature": signature(body, SECRET)}, body.replace("請求書".encode(), b"x")),
              LineSecrets(SECRET))
    with pytest.raises(Unauthorized):
        parse(request("text_message.json", secret="another"), LineSecrets(SECRET))


def test_the_signature_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(Unauthorized):
        parse(RawRequest({}, b"{not json"), LineSecrets(SECRET))
    with pytest.raises(MalformedBody):
        parse(RawRequest({"x-line-signature": signature(b"[]", SECRET)}, b"[]"), LineSecrets(SECRET))
