"""SLA alerts delivered to a local server speaking Slack's Web API, through slack-sdk and the outbox:
the card's blocks, one message per ticket updated in place (warning → later warning → breach →
resolved), with two monitors and two dispatchers, burst summaries, 429 Retry-After, errors."""

from __future__ import annotations

from datetime import timedelta

from router.core import outbound
from router.core.alerts import BUSY_RETRY
from tests.channels.slack.fake_slack import CHANNELS
from tests.conftest import API_TOKEN, post_message

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

AIKO = {"Authorization": "Bearer demo-aiko"}


async def test_one_card_per_ticket_from_warning_to_breach_to_answered(slack_client, rig, clock, fake_slack):
    start = clock()
    ref = await post_message(slack_client, AUTH, "My invoice shows a double charge", email="pay@customer.example",
                             name="Kenji <b>Mori</b>", subject="Double <!channel> charge")
    clock.now = start + timedelta(seconds=50)
    assert [(e.kind, e.level) for e in await rig.scan()] == [("warning", 1)]
    assert await rig.deliver() == 1
    [post] = fake_slack.called("chat.postMessage")
    assert post.content_type.startswith("application/json") and post.args["channel"] == "#alerts"
    [message] = fake_slack.posts()
    assert message.channel == CHANNELS["#alerts"]
    text = message.all_text()
    assert f"<http://router.test/inbox/{ref}|{ref} Double &lt;!channel&gt; charge>" in text  # linked, escaped
    assert "Kenji &lt;b&gt;Mori&lt;/b&gt; (standard)" in text
    assert "*Assignee*\n<@U0AIKO>" in text  # aiko@example.com is a Slack user: mentioned
    assert "*Priority*\nnormal" in text and "*Channel*\napi" in text
    assert "50s left (50% warning)" in text and "due 10:01 JST" in text  # the team's timezone
    assert message.text.startswith(":warning:") and f"{ref} at risk" in message.text
    buttons = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["sla_take", "sla_reassign", "sla_escalate", "sla_snooze"]

    clock.now = start + timedelta(seconds=90)
    assert [(e.kind, e.level) for e in await rig.scan()] == [("warning", 2)]
    await rig.deliver()
    assert "10s left (90% warning)" in message.all_text()

    clock.now = start + timedelta(seconds=130)
    assert [e.kind for e in await rig.scan()] == ["breach"]
    await rig.deliver()
    assert message.text.startswith(":rotating_light:") and "30s late" in message.all_text()

    clock.now = start + timedelta(seconds=200)
    reply = await slack_client.post(f"/api/v1/tickets/{ref}/replies", headers=AIKO, json={"text": "Refunded!"})
    assert reply.status_code == 201
    assert await rig.upkeep() == 1
    await rig.deliver()
    assert message.text.startswith(":white_check_mark:")
    assert "Answered by Aiko Tanaka at 10:03 JST" in message.all_text()
    assert not [b for b in message.blocks if b["type"] == "actions"]  # nothing left to act on
    assert len(fake_slack.called("chat.postMessage")) == 1 and len(message.versions) == 4
    assert await rig.upkeep() == 0  # each resolution is told once
    assert len(fake_slack.called("users.lookupByEmail")) == 1  # the mention is cached


async def test_solved_is_shown_with_who_solved_it(slack_client, rig, clock, fake_slack):
    start = clock()
    ref = await post_message(slack_client, AUTH, "Where is my parcel?", email="solve@customer.example")
    clock.now = start + timedelta(seconds=60)
    await rig.scan()
    await rig.deliver()
    patch = await slack_client.patch(f"/api/v1/tickets/{ref}", headers=AIKO, json={"status": "solved"})
    assert patch.status_code == 200
    await rig.upkeep()
    await rig.deliver()
    [message] = fake_slack.posts()
    assert "Solved by Aiko Tanaka at 10:01 JST" in message.all_text()


async def test_exactly_one_message_per_ticket_with_two_monitors_and_two_dispatchers(slack_client, rig, clock,
                                                                                   fake_slack):
    start = clock()
    refs = [await post_message(slack_client, AUTH, f"question {i}", email=f"two{i}@customer.example")
            for i in range(3)]
    clock.now = start + timedelta(seconds=95)  # both warning levels at once: two alerts per ticket queued
    assert len(await rig.scan(instances=2)) == 6
    await rig.deliver(dispatchers=2)
    clock.advance(BUSY_RETRY)  # an alert that found its card being posted comes back to update it
    await rig.deliver(dispatchers=2)
    clock.now = start + timedelta(seconds=110)
    assert len(await rig.scan(instances=2)) == 3
    await rig.deliver(dispatchers=2)
    assert len(fake_slack.called("chat.postMessage")) == 3
    assert sorted(ref for m in fake_slack.posts() for ref in refs if f"|{ref} " in m.all_text()) == sorted(refs)
    assert all(m.text.startswith(":rotating_light:") for m in fake_slack.posts())
    assert {r["status"] for r in await rig.outbox()} == {"sent"}


async def test_a_burst_becomes_one_summary_linking_to_the_at_risk_view(slack_client, rig, slack_config, clock,
                                                                      fake_slack):
    from dataclasses import replace

    rig.config = replace(slack_config, slack=replace(slack_config.slack, burst_limit=2))
    start = clock()
    refs = [await post_message(slack_client, AUTH, f"burst {i}", email=f"burst{i}@customer.example")
            for i in range(5)]
    clock.now = start + timedelta(seconds=50)
    assert len(await rig.scan()) == 5
    await rig.deliver(dispatchers=2)
    messages = fake_slack.posts()
    assert len(messages) == 3  # two cards of their own, then one summary for the rest
    summary = next(m for m in messages if "at risk at once" in m.text)
    assert summary.text.startswith(":rotating_light: 3 tickets")
    assert "<http://router.test/inbox?view=at_risk|Open the At risk view>" in summary.all_text()
    listed = [ref for ref in refs if f"|{ref} " in summary.all_text()]
    assert len(listed) == 3
    # Within the minute, a sixth ticket joins the same summary (updated in place, not a new post).
    sixth = await post_message(slack_client, AUTH, "burst 5", email="burst5@customer.example")
    clock.now = start + timedelta(seconds=55)
    async with rig.pool.acquire() as conn:
        await conn.execute("UPDATE sla_targets SET warn_at = $1 WHERE ticket_id = (SELECT id FROM tickets"
                           " WHERE number = $2)", clock(), int(sixth[2:]))
    await rig.scan()
    await rig.deliver()
    assert len(fake_slack.posts()) == 3 and f"|{sixth} " in summary.all_text()
    assert summary.text.startswith(":rotating_light: 4 tickets")
    # A minute after the burst began, the next alerts of its first three tickets are new posts again,
    # within the limit: two get cards of their own, the third a new summary; the two cards of the
    # first minute are updated in place. (The sixth ticket, opened later, has no new alert yet.)
    clock.now = start + timedelta(seconds=120)
    await rig.scan()
    await rig.deliver()
    assert len(fake_slack.called("chat.postMessage")) == 6
    assert [m.text.split(" ")[1] for m in fake_slack.posts() if "at risk at once" in m.text] == ["4", "1"]
    assert all(m.text.startswith(":rotating_light:") for m in fake_slack.posts())


async def test_429_is_retried_after_the_time_slack_asked_for(slack_client, rig, clock, fake_slack):
    await post_message(slack_client, AUTH, "Where is my parcel?", email="slow@customer.example")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    fake_slack.rate_limit("chat.postMessage", retry_after=17)
    assert await rig.deliver() == 0
    [item] = await rig.outbox()
    assert (item["status"], item["attempts"]) == ("pending", 0)  # being told to wait is no failure
    assert item["next_attempt_at"] == clock() + timedelta(seconds=17)
    assert "ratelimited" in item["last_error"]
    clock.advance(timedelta(seconds=16))
    assert await rig.deliver() == 0 and not fake_slack.posts()
    clock.advance(timedelta(seconds=1))
    assert await rig.deliver() == 1
    assert len(fake_slack.posts()) == 1 and len(fake_slack.called("chat.postMessage")) == 2


async def test_permanent_refusals_go_dead_with_their_reason_in_metrics(slack_client, rig, clock, fake_slack):
    await post_message(slack_client, AUTH, "Where is my parcel?", email="gone@customer.example")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    fake_slack.fail("chat.postMessage", "not_in_channel")
    await rig.deliver()
    [item] = await rig.outbox()
    assert (item["status"], item["attempts"]) == ("dead", 1)
    assert "not_in_channel" in item["last_error"] and "invite it" in item["last_error"]
    scrape = rig.metrics.registry
    assert scrape.get_sample_value("router_outbox_dead_total", {"channel": "slack", "reason": "not_in_channel"}) == 1


async def test_wrong_token_and_unknown_channel_are_permanent(slack_client, rig, slack_config, clock, fake_slack):
    from dataclasses import replace

    await post_message(slack_client, AUTH, "Where is my parcel?", email="tok@customer.example")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    rig.config = replace(slack_config, settings=replace(slack_config.settings, slack_bot_token="xoxb-revoked"))
    await rig.deliver()
    [item] = await rig.outbox()
    assert item["status"] == "dead" and "invalid_auth" in item["last_error"]
    assert rig.metrics.registry.get_sample_value("router_outbox_dead_total",
                                                 {"channel": "slack", "reason": "invalid_auth"}) == 1

    await post_message(slack_client, AUTH, "Another one", email="chan@customer.example")
    rig.config = replace(slack_config, settings=replace(slack_config.settings, slack_alert_channel="#nowhere"))
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    await rig.deliver()
    unknown = [r for r in await rig.outbox() if "channel_not_found" in (r["last_error"] or "")]
    assert unknown and {r["status"] for r in unknown} == {"dead"}
    assert "check SLACK_ALERT_CHANNEL" in unknown[0]["last_error"]
    assert rig.metrics.registry.get_sample_value("router_outbox_dead_total",
                                                 {"channel": "slack", "reason": "channel_not_found"}) == len(unknown)


async def test_transient_errors_are_retried_with_backoff(slack_client, rig, clock, fake_slack):
    await post_message(slack_client, AUTH, "Where is my parcel?", email="flaky@customer.example")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    fake_slack.fail("chat.postMessage", "internal_error", status=500)
    await rig.deliver()
    [item] = await rig.outbox()
    assert (item["status"], item["attempts"]) == ("pending", 1) and "internal_error" in item["last_error"]
    assert item["next_attempt_at"] >= clock() + outbound.BASE_BACKOFF * 0.8
    clock.advance(outbound.BASE_BACKOFF * 2)
    assert await rig.deliver() == 1 and len(fake_slack.posts()) == 1


async def test_slack_down_blocks_neither_ingest_nor_the_monitor(slack_client, rig, clock, fake_slack):
    await fake_slack.stop()
    ref = await post_message(slack_client, AUTH, "Where is my parcel?", email="down@customer.example")
    clock.advance(timedelta(seconds=50))
    assert [e.ticket_ref for e in await rig.scan()] == [ref]
    assert await rig.deliver() == 0
    [item] = await rig.outbox()
    assert item["status"] == "pending" and "unreachable" in item["last_error"]
    assert await post_message(slack_client, AUTH, "Still there?", email="down2@customer.example")


async def test_a_snoozed_ticket_raises_no_alert_until_the_snooze_ends(slack_client, rig, clock, fake_slack):
    from agents.store import AgentIdentity
    from router.core.actions import alerts as alert_actions

    start = clock()
    ref = await post_message(slack_client, AUTH, "My invoice is wrong", email="zz@customer.example")
    clock.now = start + timedelta(seconds=50)
    await rig.scan()
    await rig.deliver()
    [message] = fake_slack.posts()
    app = slack_client.app
    lena = AgentIdentity(4, "lena@example.com", "lead")
    await alert_actions.snooze(app.state.services.actions(), lena, ref, key="press-1")
    await rig.deliver()
    assert "snoozed until 10:30 JST" in message.all_text() and "Snoozed for 30m by Lena Fischer" in message.all_text()
    versions = len(message.versions)
    clock.now = start + timedelta(seconds=101)
    assert [e.kind for e in await rig.scan()] == ["warning", "breach"]
    await rig.deliver()
    assert len(message.versions) == versions  # swallowed
    clock.now = start + timedelta(minutes=31)
    assert await rig.upkeep() == 1
    await rig.deliver()
    assert message.text.startswith(":rotating_light:")


async def test_a_deleted_card_is_posted_again_by_the_next_alert(slack_client, rig, clock, fake_slack):
    start = clock()
    ref = await post_message(slack_client, AUTH, "Where is my parcel?", email="del@customer.example")
    clock.now = start + timedelta(seconds=50)
    await rig.scan()
    await rig.deliver()
    fake_slack.messages.clear()  # a lead deleted the card
    clock.now = start + timedelta(seconds=101)
    await rig.scan()
    await rig.deliver()
    clock.advance(BUSY_RETRY)  # the second alert may have found the new card being posted
    await rig.deliver()
    [card] = fake_slack.posts()
    assert card.text.startswith(f":rotating_light: {ref} breached")
    assert {r["status"] for r in await rig.outbox()} == {"sent"}
