"""The Meta adapter, pure: (headers, raw body, app secret) → verified messages and delivery statuses.

Fixtures follow the payloads documented by Meta (WhatsApp Cloud API `messages` webhook reference,
Messenger Platform webhook events, Instagram webhook examples)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.base import RawRequest
from channels.meta.adapter import MetaSecrets, parse, signature, verify_signature, verify_subscription
from router.core.errors import Forbidden, MalformedBody, Unauthorized
from router.core.inbound import Identity

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-app-secret"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def request(name: str) -> RawRequest:
    body = (FIXTURES / name).read_bytes()
    return RawRequest(signed(body), body)


def read(name: str):
    return parse(request(name), MetaSecrets(SECRET))


def test_a_whatsapp_text_becomes_a_message_from_the_wa_id_and_its_verified_phone() -> None:
    webhook = read("whatsapp_text.json")
    [message] = webhook.messages
    assert webhook.statuses == ()
    assert message.channel == "whatsapp"
    assert message.identities == (Identity("whatsapp", "16505551234"), Identity("phone", "+16505551234"))
    assert message.claims == ()
    assert message.text == "Does it come in another color?"
    assert message.external_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.sender_name == "Sheena Nelson"
    # The business number replies go from, and when the customer sent it (WhatsApp's window starts then).
    assert message.metadata == {"phone_number_id": "106540352242922", "sent_at": "2025-06-08T20:59:43+00:00"}


def test_whatsapp_media_locations_and_answers_are_noted_and_reactions_are_no_messages() -> None:
    image, document, location, answer, unsupported = read("whatsapp_media.json").messages
    assert image.text == "The screen is cracked\n[image]"
    assert image.metadata["attachments"] == [{"type": "image", "id": "1003383421387256", "mime_type": "image/jpeg"}]
    assert document.text == "[file: invoice-1042.pdf]"
    assert document.metadata["attachments"][0]["filename"] == "invoice-1042.pdf"
    assert location.text == "[location: Main Office, 1 Hacker Way, Menlo Park, CA 94025, 37.483307, -122.148981]"
    assert answer.text == "Change"
    assert unsupported.text == "[unsupported message]"  # the customer wrote something: say so, never drop it


def test_whatsapp_statuses_are_receipts_never_customer_messages() -> None:
    webhook = read("whatsapp_statuses.json")
    assert webhook.messages == ()
    delivered, read_, failed, foreign = webhook.statuses  # "sent" is the outbox's own business
    assert (delivered.status, delivered.message_ref) == ("delivered", "OUR_MESSAGE_REF")
    assert delivered.platform_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjY3RjE4RjU1NTg5MEEA"
    assert delivered.occurred_at == datetime.fromtimestamp(1750263773, UTC)
    assert read_.status == "read"
    assert (failed.status, failed.message_ref) == ("failed", "OUR_OTHER_MESSAGE_REF")
    assert failed.error is not None
    assert failed.error.startswith("131047 Re-engagement message (Message failed to send because more than 24 hours")
    assert foreign.message_ref is None  # sent by another tool: nothing of ours to record it on


def test_a_messenger_text_comes_from_the_page_scoped_id() -> None:
    [message] = read("messenger_text.json").messages
    assert message.channel == "messenger"
    assert message.identities == (Identity("messenger", "6677889900112233"),)
    assert (message.text, message.external_id) == ("hello, world!", "mid.1457764197618:41d102a3e1ae206a38")
    assert message.metadata == {"page_id": "1234567890123456"}


def test_messenger_attachments_are_noted_and_referenced_not_downloaded() -> None:
    [message] = read("messenger_attachments.json").messages
    assert message.text == "[image]\n[file]"
    assert [ref["type"] for ref in message.metadata["attachments"]] == ["image", "file"]
    assert message.metadata["attachments"][0]["url"].startswith("https://scontent.xx.fbcdn.net/")


def test_a_postback_is_the_button_the_customer_pressed() -> None:
    [message] = read("messenger_postback.json").messages
    assert (message.text, message.external_id) == ("Talk to an agent", "m_MESSAGE-ID")
    assert message.metadata["postback"] == "AGENT_PAYLOAD"


def test_an_echo_of_our_own_page_message_is_never_a_customer_message() -> None:
    assert read("messenger_echo.json").messages == ()
    # Loop protection without the flag too: a "message" whose sender is the page itself.
    data = json.loads((FIXTURES / "messenger_echo.json").read_bytes())
    del data["entry"][0]["messaging"][0]["message"]["is_echo"]
    body = json.dumps(data).encode()
    assert parse(RawRequest(signed(body), body), MetaSecrets(SECRET)).messages == ()


def test_receipts_and_unknown_event_types_are_acknowledged_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="channels.meta.adapter"):
        assert read("messenger_receipts.json").messages == ()
        assert read("instagram_comment.json").messages == ()
        assert read("unknown_object.json").messages == ()
        template_status = read("whatsapp_template_status.json")
        assert (template_status.messages, template_status.statuses) == ((), ())
    logged = caplog.text
    assert "brand_new_event" in logged and "changes" in logged and "'permissions'" in logged
    assert "'message_template_status_update'" in logged


def test_an_instagram_message_is_from_the_instagram_scoped_id() -> None:
    [message] = read("instagram_text.json").messages
    assert message.channel == "instagram"
    assert message.identities == (Identity("instagram", "1914234458684537"),)
    assert message.text == "Is the blue one back in stock?"


@pytest.mark.parametrize("headers", [
    {},
    {"x-hub-signature-256": ""},
    {"x-hub-signature-256": "sha256="},
    {"x-hub-signature-256": "sha1=" + "0" * 40},
    {"x-hub-signature-256": "sha256=" + "0" * 64},
])
def test_a_missing_or_wrong_signature_is_refused(headers: dict[str, str]) -> None:
    body = (FIXTURES / "whatsapp_text.json").read_bytes()
    with pytest.raises(Unauthorized, match="X-Hub-Signature-256"):
        parse(RawRequest(headers, body), MetaSecrets(SECRET))


def test_the_signature_matches_a_published_example() -> None:
    """Meta publishes no test vector for `X-Hub-Signature-256`; GitHub's webhook documentation does,
    for the same header and scheme (hex HMAC-SHA256 of the raw body, `sha256=` prefix)."""
    published = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(b"Hello, World!", "It's a Secret to Everybody") == published
    verify_signature(RawRequest({"x-hub-signature-256": published}, b"Hello, World!"), "It's a Secret to Everybody")
    with pytest.raises(Unauthorized):
        verify_signature(RawRequest({"x-hub-signature-256": published}, b"Hello, World?"), "It's a Secret to Everybody")


def test_a_tampered_body_or_another_secret_fails_the_signature() -> None:
    body = (FIXTURES / "whatsapp_text.json").read_bytes()
    tampered = body.replace(b"another color", b"another price")
    with pytest.raises(Unauthorized):
        parse(RawRequest(signed(body), tampered), MetaSecrets(SECRET))
    with pytest.raises(Unauthorized):
        parse(RawRequest(signed(body, "other-secret"), body), MetaSecrets(SECRET))


def test_the_signature_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(Unauthorized):
        parse(RawRequest({}, b"{not json"), MetaSecrets(SECRET))
    with pytest.raises(MalformedBody):
        parse(RawRequest(signed(b"{not json"), b"{not json"), MetaSecrets(SECRET))


def test_the_signature_header_may_use_upper_case_hex() -> None:
    body = (FIXTURES / "messenger_text.json").read_bytes()
    headers = {"x-hub-signature-256": signed(body)["x-hub-signature-256"].upper().replace("SHA256=", "sha256=")}
    assert len(parse(RawRequest(headers, body), MetaSecrets(SECRET)).messages) == 1


def test_malformed_events_inside_a_signed_body_are_skipped_not_fatal() -> None:
    body = json.dumps({"object": "page", "entry": [
        "not an object",
        {"messaging": [{"sender": {}, "message": {"mid": "m_1", "text": "no sender"}},
                       {"sender": {"id": "1"}, "recipient": {"id": "2"}, "message": {"text": "no id"}},
                       {"sender": {"id": 42}, "recipient": {"id": "2"},
                        "message": {"mid": "m_2", "text": "ok\u0000"}}]},
    ]}).encode()
    [message] = parse(RawRequest(signed(body), body), MetaSecrets(SECRET)).messages
    assert message.identities == (Identity("messenger", "42"),)
    assert message.text == "ok"  # a NUL would not store: dropped, the rest kept


def test_the_verify_handshake_echoes_the_challenge_only_for_our_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert verify_subscription(params, "vt") == "1158201444"
    for wrong in ({**params, "hub.verify_token": "other"}, {**params, "hub.mode": "unsubscribe"},
                  {**params, "hub.challenge": ""}, {**params, "hub.challenge": "a b"},
                  {k: v for k, v in params.items() if k != "hub.mode"}):
        with pytest.raises(Forbidden):
            verify_subscription(wrong, "vt")
