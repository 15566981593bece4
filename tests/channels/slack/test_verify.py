"""Slack's v0 request signature (with Slack's documented example), and parsing what Slack posts."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from channels.slack import payloads, verify
from router.core.errors import MalformedBody, Unauthorized

# Slack's documented example ("Verifying requests from Slack").
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
HEADERS = {"x-slack-request-timestamp": TIMESTAMP, "x-slack-signature": SIGNATURE}


def test_slacks_documented_example_verifies():
    assert verify.signature(SECRET, TIMESTAMP, BODY) == SIGNATURE
    assert verify.verify(HEADERS, BODY, SECRET, now=int(TIMESTAMP) + 299) == SIGNATURE


@pytest.mark.parametrize("headers, body, now, reason", [
    (HEADERS, BODY.replace(b"roadrunner", b"roadrunnEr"), int(TIMESTAMP), "does not match"),
    (HEADERS, BODY + b"&x=1", int(TIMESTAMP), "does not match"),
    ({**HEADERS, "x-slack-signature": SIGNATURE[:-1] + "4"}, BODY, int(TIMESTAMP), "does not match"),
    ({**HEADERS, "x-slack-signature": SIGNATURE.replace("v0=", "v1=")}, BODY, int(TIMESTAMP), "does not match"),
    (HEADERS, BODY, int(TIMESTAMP) + 301, "more than 5 minutes old"),
    (HEADERS, BODY, int(TIMESTAMP) - 301, "more than 5 minutes old"),
    ({"x-slack-signature": SIGNATURE}, BODY, int(TIMESTAMP), "missing"),
    ({"x-slack-request-timestamp": TIMESTAMP}, BODY, int(TIMESTAMP), "missing"),
    ({**HEADERS, "x-slack-request-timestamp": "1531420618.5"}, BODY, int(TIMESTAMP), "not a Unix time"),
])
def test_tampered_expired_or_unsigned_requests_are_refused(headers, body, now, reason):
    with pytest.raises(Unauthorized, match=reason):
        verify.verify(headers, body, SECRET, now=now)


def test_a_wrong_secret_is_refused():
    with pytest.raises(Unauthorized):
        verify.verify(HEADERS, BODY, SECRET[:-1] + "6", now=int(TIMESTAMP))


def form(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_button_press_is_parsed():
    press = payloads.parse_interaction(form({
        "type": "block_actions", "user": {"id": "U1"}, "trigger_id": "tr", "response_url": "https://hooks.slack.com/x",
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1.2", "is_ephemeral": False},
        "actions": [{"action_id": "sla_take", "value": "T-1042", "action_ts": "99.1"}]}))
    assert press == payloads.ButtonPress(button="take", ref="T-1042", user_id="U1", action_ts="99.1",
                                         response_url="https://hooks.slack.com/x", trigger_id="tr", channel_id="C1",
                                         message_ts="1.2", ephemeral=False)


def test_the_reassign_dialog_is_parsed():
    submission = payloads.parse_interaction(form({
        "type": "view_submission", "user": {"id": "U1"},
        "view": {"id": "V1", "callback_id": "sla_reassign",
                 "private_metadata": json.dumps({"ref": "T-7", "channel": "C1"}),
                 "state": {"values": {"agent": {"agent": {"selected_option": {"value": "2"}}},
                                      "reason": {"reason": {"value": "  knows this customer "}}}}}}))
    assert submission == payloads.ReassignSubmission(ref="T-7", user_id="U1", agent_id="2",
                                                     reason="knows this customer", channel_id="C1", view_id="V1")


@pytest.mark.parametrize("payload", [
    {"type": "view_closed", "user": {"id": "U1"}},
    {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "other", "value": "x"}]},
    {"type": "block_actions", "user": {"id": "U1"}, "actions": []},
    {"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "someone_else"}},
])
def test_interactions_we_do_not_act_on_parse_to_none(payload):
    assert payloads.parse_interaction(form(payload)) is None


@pytest.mark.parametrize("body", [
    b"", b"payload=", b"payload=%7Bnot+json", b"payload=%5B1%5D", b"nothing=here", form({"type": "block_actions"}),
    b"\xff\xfe", b"payload=" + b"%5B" * 5000,
])
def test_bodies_slack_would_not_send_are_malformed(body):
    with pytest.raises(MalformedBody):
        payloads.parse_interaction(body)


def test_slash_commands_are_parsed():
    command = payloads.parse_command(BODY)
    assert (command.command, command.text, command.user_id, command.channel_id) == (
        "/webhook-collect", "", "U2CERLKJA", "G8PSS9T3V")
    assert command.response_url and command.response_url.startswith("https://hooks.slack.com/commands/")
    with pytest.raises(MalformedBody):
        payloads.parse_command(b"text=hello")
