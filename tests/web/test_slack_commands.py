"""`POST /slack/commands`: `/sla` lists the tickets at risk for the user's team, `/sla T-1042` shows one
with its buttons; Slack's documented signature example is accepted; an answer that takes longer
than Slack waits comes through the command's `response_url`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from router.web import slack as slack_endpoints
from tests.channels.slack import fixtures
from tests.channels.slack.test_verify import BODY, SIGNATURE, TIMESTAMP
from tests.conftest import API_TOKEN, post_message
from tests.web.test_slack_actions import signed

fake_slack, rig, slack_client, slack_config = (fixtures.fake_slack, fixtures.rig, fixtures.slack_client,
                                            fixtures.slack_config)  # this folder's Slack fixtures
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def command(client, fake, clock, text: str, user: str = "U0LENA"):
    body = urlencode({"command": "/sla", "text": text, "user_id": user, "channel_id": "C0ALERTS",
                      "response_url": fake.response_url("command")}).encode()
    return await client.post("/slack/commands", content=body, headers=signed(body, clock().timestamp()))


async def test_slacks_documented_request_is_accepted(slack_client, clock):
    clock.now = datetime.fromtimestamp(int(TIMESTAMP) + 10, UTC)
    headers = {"X-Slack-Request-Timestamp": TIMESTAMP, "X-Slack-Signature": SIGNATURE,
               "Content-Type": "application/x-www-form-urlencoded"}
    response = await slack_client.post("/slack/commands", content=BODY, headers=headers)
    assert response.status_code == 200  # verified; the user is unknown to this workspace, and told so
    assert response.json()["response_type"] == "ephemeral"
    tampered = await slack_client.post("/slack/commands", content=BODY.replace(b"text=", b"text=x"), headers=headers)
    assert tampered.status_code == 401


async def test_sla_lists_what_is_at_risk_for_the_users_team(slack_client, rig, clock, fake_slack):
    first = await post_message(slack_client, AUTH, "My invoice is wrong", email="one@customer.example")
    clock.advance(timedelta(seconds=40))
    second = await post_message(slack_client, AUTH, "Where is my parcel?", email="two@customer.example")
    calm = await command(slack_client, fake_slack, clock, "")
    assert calm.json()["text"] == "Nothing at risk for team support right now."
    clock.advance(timedelta(seconds=65))  # the first is breached, the second past its first warning
    listed = (await command(slack_client, fake_slack, clock, "")).json()
    assert listed["response_type"] == "ephemeral" and listed["text"] == "2 tickets at risk for team support"
    lines = listed["blocks"][1]["text"]["text"].splitlines()
    assert lines[0].startswith(":rotating_light: <http://router.test/inbox/" + first) and lines[0].endswith(
        "First response 5s late")
    assert lines[1].startswith(":warning: <http://router.test/inbox/" + second) and lines[1].endswith(
        "First response 35s left")


async def test_sla_with_a_reference_shows_the_ticket_with_its_buttons(slack_client, rig, clock, fake_slack):
    ref = await post_message(slack_client, AUTH, "My invoice is wrong", email="one@customer.example")
    answer = (await command(slack_client, fake_slack, clock, ref.lower())).json()
    assert answer["text"] == f":large_green_circle: {ref} on track: first response due in 1m"
    kinds = [block["type"] for block in answer["blocks"]]
    assert kinds == ["section", "section", "actions"]
    missing = (await command(slack_client, fake_slack, clock, "T-99999")).json()
    assert missing["text"] == "there is no ticket T-99999"
    usage = (await command(slack_client, fake_slack, clock, "please help")).json()
    assert usage["text"].startswith("`/sla` lists the tickets at risk")


async def test_only_agents_may_ask(slack_client, fake_slack, clock):
    answer = (await command(slack_client, fake_slack, clock, "", user="U0STRANGER")).json()
    assert answer["text"].startswith("stranger@elsewhere.example is not an active agent here")


async def test_a_slow_answer_follows_through_the_response_url(slack_client, fake_slack, clock, monkeypatch):
    monkeypatch.setattr(slack_endpoints, "ANSWER_WITHIN", 0.05)
    fake_slack.delay = 0.3  # users.info is slow today
    answer = (await command(slack_client, fake_slack, clock, "")).json()
    assert answer == {"response_type": "ephemeral", "text": "Looking that up…", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Looking that up…"}}]}
    for _ in range(100):
        if fake_slack.hooks:
            break
        await asyncio.sleep(0.02)
    [(name, body)] = fake_slack.hooks
    assert name == "command" and body["text"] == "Nothing at risk for team support right now."
