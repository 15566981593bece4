"""`POST /slack/actions`: Slack's signature checked over the raw body (tampered, expired and replayed
requests get 401 and change nothing), the Slack user matched to an agent by email, and the buttons
on an alert card — Take it, Reassign…, Escalate, Snooze 30m — acting through the inbox's actions
with the inbox's permissions, the card updated to show who did what."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from urllib.parse import urlencode

from channels.slack import verify
from tests.channels.slack import fixtures
from tests.channels.slack.fake_slack import SIGNING_SECRET
from tests.conftest import API_TOKEN, post_message

fake_slack, rig, slack_client, slack_config = (fixtures.fake_slack, fixtures.rig, fixtures.slack_client,
                                            fixtures.slack_config)  # this folder's Slack fixtures
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
AIKO, BEN, CHIE, LENA = 1, 2, 3, 4
_presses = itertools.count(1)


def signed(body: bytes, at: float) -> dict[str, str]:
    timestamp = str(int(at))
    return {"X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": verify.signature(SIGNING_SECRET, timestamp, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def form(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def press_body(fake, button: str, ref: str, user: str, *, ephemeral: bool = False) -> bytes:
    return form({
        "type": "block_actions", "user": {"id": user}, "trigger_id": f"trigger-{next(_presses)}",
        "response_url": fake.response_url(f"press-{user}"),
        "container": {"type": "ephemeral" if ephemeral else "message", "channel_id": "C0ALERTS",
                      "message_ts": "1700000001.000100", "is_ephemeral": ephemeral},
        "actions": [{"action_id": f"sla_{button}", "value": ref, "action_ts": f"{next(_presses)}.5"}]})


async def press(client, fake, clock, button: str, ref: str, user: str, **options):
    body = press_body(fake, button, ref, user, **options)
    return await client.post("/slack/actions", content=body, headers=signed(body, clock().timestamp()))


async def ticket(client, auth=AUTH, email="pay@customer.example") -> dict:
    ref = await post_message(client, auth, "My invoice shows a double charge", email=email)
    return (await client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()


async def waiting_ticket_with_card(client, rig, clock) -> str:
    """An unassigned billing ticket (its agents are away) whose at-risk card is in Slack."""
    for agent in (AIKO, BEN):
        assert (await client.patch(f"/api/v1/agents/{agent}", json={"status": "away"}, headers=AUTH)).status_code == 200
    found = await ticket(client)
    assert found["assignee"] is None and (found["topic"], found["language"]) == ("billing", "en")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    await rig.deliver()
    return found["ref"]


async def state(client, ref: str) -> tuple:
    found = (await client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()
    return found["assignee"], found["priority"], len(found["routing_log"])


def ephemeral(fake) -> list[str]:
    return [body["text"] for _, body in fake.hooks]


async def test_take_it_assigns_the_ticket_and_updates_the_card(slack_client, rig, clock, fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    [card] = fake_slack.posts()
    response = await press(slack_client, fake_slack, clock, "take", ref, "U0BEN")
    assert response.status_code == 200
    assert (await state(slack_client, ref))[0] == "ben@example.com"
    log = (await slack_client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()["routing_log"][-1]
    assert (log["action"], log["actor"], log["reason"]) == ("transferred", "ben@example.com",
                                                             "taken from Slack by ben@example.com")
    await rig.deliver()
    text = card.all_text()
    assert "*Assignee*\n<@U0BEN>" in text and "Taken by Ben Carter at 10:00 JST" in text
    assert ephemeral(fake_slack) == []  # the card itself says it
    assert await press(slack_client, fake_slack, clock, "take", ref, "U0BEN")
    assert ephemeral(fake_slack) == [f"{ref} is yours already"]
    assert len(fake_slack.called("users.info")) == 1  # who U0BEN is, asked once


REFUSED = [
    ("U0STRANGER", "stranger@elsewhere.example is not an active agent here, so you cannot act on tickets"),
    ("U0NOMAIL", "Slack shows no email address for you"),
    ("U0GHOST", "Slack does not know your user"),
    ("U0CHIE", "you cannot take {ref}: it needs skill billing and language en"),
    ("U0LENA", "you cannot take {ref}: it needs skill billing"),
]


async def test_a_press_by_someone_who_may_not_take_it_changes_nothing_and_says_why(slack_client, rig, clock,
                                                                                   fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    before = await state(slack_client, ref)
    versions = len(fake_slack.posts()[0].versions)
    for user, reason in REFUSED:
        fake_slack.hooks.clear()
        response = await press(slack_client, fake_slack, clock, "take", ref, user)
        assert response.status_code == 200
        [(name, hook)] = fake_slack.hooks
        assert name == f"press-{user}" and hook["text"].startswith(reason.format(ref=ref)), user
        assert hook["response_type"] == "ephemeral" and hook["replace_original"] is False
        assert await state(slack_client, ref) == before
    await rig.deliver()
    assert len(fake_slack.posts()[0].versions) == versions


async def test_agents_cannot_take_a_colleagues_ticket(slack_client, rig, clock, fake_slack):
    found = await ticket(slack_client)
    assert found["assignee"] == "aiko@example.com"
    await press(slack_client, fake_slack, clock, "take", found["ref"], "U0BEN")
    assert ephemeral(fake_slack) == ["agents may transfer their own or unassigned tickets; ask a lead for the others"]
    assert (await state(slack_client, found["ref"]))[0] == "aiko@example.com"


async def test_reassign_offers_eligible_agents_and_needs_a_reason(slack_client, rig, clock, fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    [card] = fake_slack.posts()
    assert (await press(slack_client, fake_slack, clock, "reassign", ref, "U0LENA")).status_code == 200
    [dialog] = fake_slack.views
    [trigger] = [c.args["trigger_id"] for c in fake_slack.called("views.open")]
    assert trigger.startswith("trigger-") and dialog["callback_id"] == "sla_reassign"
    options = dialog["blocks"][0]["element"]["options"]
    assert [(o["value"], o["text"]["text"]) for o in options] == [
        (str(AIKO), "Aiko Tanaka (away, 0/5)"), (str(BEN), "Ben Carter (away, 0/5)")]  # chie lacks billing, en

    async def submit(agent: int, reason: str):
        body = form({"type": "view_submission", "user": {"id": "U0LENA"}, "view": {
            "id": "V0001", "callback_id": "sla_reassign", "private_metadata": dialog["private_metadata"],
            "state": {"values": {"agent": {"agent": {"selected_option": {"value": str(agent)}}},
                                 "reason": {"reason": {"value": reason}}}}}})
        return await slack_client.post("/slack/actions", content=body, headers=signed(body, clock().timestamp()))

    response = await submit(BEN, "  ")
    assert response.json() == {"response_action": "errors",
                               "errors": {"reason": "Say why: the reason stays in the ticket's history."}}
    response = await submit(CHIE, "she is free")
    assert response.json()["errors"] == {
        "agent": f"Chie Sato cannot take {ref}: it needs skill billing and language en"}
    assert (await state(slack_client, ref))[0] is None
    response = await submit(BEN, "knows this customer")
    assert response.status_code == 200 and response.content == b""
    log = (await slack_client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()["routing_log"][-1]
    assert (log["agent"], log["actor"], log["reason"]) == ("ben@example.com", "lena@example.com", "knows this customer")
    await rig.deliver()
    assert "Reassigned to Ben Carter (knows this customer) by Lena Fischer at 10:00 JST" in card.all_text()


async def test_escalate_raises_the_priority_step_by_step(slack_client, rig, clock, fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    [card] = fake_slack.posts()
    for expected in ("high", "urgent"):
        await press(slack_client, fake_slack, clock, "escalate", ref, "U0CHIE")
        assert (await state(slack_client, ref))[1] == expected
    await press(slack_client, fake_slack, clock, "escalate", ref, "U0CHIE")
    assert ephemeral(fake_slack) == [f"{ref} is urgent already: there is nothing higher"]
    await rig.deliver()
    text = card.all_text()
    assert "*Priority*\nurgent" in text and "Escalated to urgent by Chie Sato" in text


async def test_snooze_is_for_leads_and_the_assignee(slack_client, rig, clock, fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    await press(slack_client, fake_slack, clock, "snooze", ref, "U0CHIE")
    assert ephemeral(fake_slack) == ["only leads and the ticket's assignee can snooze its alerts"]
    await press(slack_client, fake_slack, clock, "snooze", ref, "U0LENA")
    await rig.deliver()
    assert "alerts snoozed until 10:30 JST" in fake_slack.posts()[0].all_text()


async def test_a_press_on_an_ephemeral_card_is_confirmed_to_the_presser(slack_client, rig, clock, fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    await press(slack_client, fake_slack, clock, "take", ref, "U0AIKO", ephemeral=True)
    assert ephemeral(fake_slack) == [f"{ref} is yours now."]


async def test_tampered_expired_and_replayed_requests_get_401_and_change_nothing(slack_client, rig, clock,
                                                                                  fake_slack):
    ref = await waiting_ticket_with_card(slack_client, rig, clock)
    before = await state(slack_client, ref)
    body = press_body(fake_slack, "escalate", ref, "U0LENA")
    good = signed(body, clock().timestamp())
    tampered = await slack_client.post("/slack/actions", content=body.replace(b"escalate", b"take"), headers=good)
    expired = await slack_client.post("/slack/actions", content=body,
                                      headers=signed(body, clock().timestamp() - 301))
    unsigned = await slack_client.post("/slack/actions", content=body)
    for response in (tampered, expired, unsigned):
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert "5 minutes" in expired.json()["detail"]
    assert await state(slack_client, ref) == before
    assert (await slack_client.post("/slack/actions", content=body, headers=good)).status_code == 200
    after = await state(slack_client, ref)
    assert after[1] == "high"
    replayed = await slack_client.post("/slack/actions", content=body, headers=good)
    assert replayed.status_code == 401 and "replays are refused" in replayed.json()["detail"]
    assert await state(slack_client, ref) == after
    assert fake_slack.called("users.info")  # only signed, fresh requests got that far
    assert len(fake_slack.called("users.info")) == 1


async def test_slack_endpoints_are_absent_without_slack(client):
    response = await client.post("/slack/actions", content=b"payload=%7B%7D")
    assert response.status_code == 404 and "not configured" in response.json()["detail"]
