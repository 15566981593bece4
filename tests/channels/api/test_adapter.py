"""The integration channel's adapter, pure: (headers, raw body, secrets) → verified messages."""

from pathlib import Path

import pytest

from channels.api.adapter import ApiSecrets, parse
from channels.base import RawRequest
from router.core.errors import InvalidInput, MalformedBody, Unauthorized
from router.core.inbound import Identity

FIXTURES = Path(__file__).parent / "fixtures"
SECRETS = ApiSecrets("s3cret")


def request(name: str, token: str | None = "s3cret") -> RawRequest:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return RawRequest(headers, (FIXTURES / name).read_bytes())


def test_a_crm_message_becomes_one_normalized_message() -> None:
    [message] = parse(request("crm_message.json"), SECRETS)
    assert message.channel == "api"
    assert message.identities == (Identity("api", "991"),)  # the integration's own user id: proved
    assert message.claims == (Identity("email", "hanako@example.jp"), Identity("phone", "+819012345678"))
    assert (message.sender_name, message.subject, message.external_id) == (
        "Hanako Yamada", "請求書の再発行", "crm-note-1")


@pytest.mark.parametrize("token", [None, "wrong", "s3cret-but-longer", ""])
def test_a_missing_or_wrong_token_is_refused_before_the_body_is_read(token: str | None) -> None:
    with pytest.raises(Unauthorized):
        parse(RawRequest({"authorization": f"Bearer {token}"} if token is not None else {}, b"not json"), SECRETS)


def test_the_api_is_off_without_a_configured_token() -> None:
    with pytest.raises(Unauthorized, match="disabled"):
        parse(request("crm_message.json"), ApiSecrets(None))


def test_a_body_that_is_not_a_json_object_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="JSON object"):
        parse(request("not_an_object.json"), SECRETS)


def test_a_typed_address_that_is_not_an_address_is_refused() -> None:
    body = b'{"channel": "api", "sender": {"email": "not-an-address"}, "text": "hi"}'
    with pytest.raises(InvalidInput, match=r"sender\.email"):
        parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)


def test_addresses_the_integration_verified_are_identities_not_claims() -> None:
    body = (b'{"channel": "api", "sender": {"id": "7", "email": "a@example.com", "phone": "+81 90 1111 2222",'
            b' "verified": ["email"]}, "text": "hi"}')
    [message] = parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)
    assert message.identities == (Identity("api", "7"), Identity("email", "a@example.com"))
    assert message.claims == (Identity("phone", "+819011112222"),)


def test_subject_and_name_become_one_line() -> None:
    body = b'{"channel": "api", "sender": {"id": "7", "name": "Eve\\r\\nBcc: x"}, "subject": "Hi\\r\\nX-Injected: yes",'
    body += b' "text": "hi"}'
    [message] = parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)
    assert (message.subject, message.sender_name) == ("Hi X-Injected: yes", "Eve Bcc: x")


@pytest.mark.parametrize("body", [
    b'{"channel": "api", "sender": {"email": "a@example.com", "verified": [[]]}, "text": "hi"}',
    b'{"channel": "api", "sender": {"email": "a@example.com", "verified": [{}]}, "text": "hi"}',
])
def test_sender_verified_holds_only_names_of_what_was_verified(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="verified"):
        parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)


def test_an_integer_too_long_to_convert_is_a_malformed_body() -> None:
    body = b'{"channel": "api", "sender": {"id": ' + b"1" * 5000 + b'}, "text": "x"}'
    with pytest.raises(MalformedBody):
        parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)


@pytest.mark.parametrize("blank", [" ", "\\t\\t", ""])
def test_a_blank_sender_id_is_no_identity(blank: str) -> None:
    body = b'{"channel": "api", "sender": {"id": "' + blank.encode() + b'", "name": "A"}, "text": "x"}'
    with pytest.raises(InvalidInput, match="sender"):
        parse(RawRequest({"authorization": "Bearer s3cret"}, body), SECRETS)
