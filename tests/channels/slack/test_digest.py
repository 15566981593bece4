"""Per-team Slack channels and timezones, and the daily digest: once per team and local day, at the
configured local time, with yesterday's breaches and compliance and where things stand now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.config import ConfigError, parse_config
from router.core.alerts import Upkeep
from tests.channels.slack.fake_slack import CHANNELS
from tests.channels.slack.fixtures import SlackRig, slack_config_text, with_slack
from tests.conftest import API_TOKEN, post_message

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
AIKO = {"Authorization": "Bearer demo-aiko"}
TEAM = '[[teams]]\nname = "support"\n'
TOKYO_TEAM = TEAM + 'slack_channel = "#tokyo-leads"\ntimezone = "Asia/Tokyo"\n'


@pytest.fixture
def slack_config(settings, fake_slack):
    text = slack_config_text('[slack]\ndigest_time = "09:00"\nburst_limit = 10\n').replace(TEAM, TOKYO_TEAM)
    return with_slack(parse_config(text, settings), fake_slack, slack_alert_channel=None)


@pytest.fixture
def rig(pool, slack_config, clock, fake_slack):
    from router.metrics import Metrics

    return SlackRig(pool, slack_config, clock, fake_slack, Metrics())


def test_team_slack_settings_are_checked(settings):
    config = parse_config(slack_config_text().replace(TEAM, TOKYO_TEAM), settings)
    assert config.slack_channel("support") == "#tokyo-leads" and config.team_timezone("support") == "Asia/Tokyo"
    assert config.slack_channel(None) is None and config.team_timezone(None) == "Asia/Tokyo"
    bad = slack_config_text('[slack]\ndigest_time = "9am"\nburst_limit = 0\nsnooze = "1h"\n').replace(
        TEAM, TEAM + 'slack_channel = "leads room"\ntimezone = "Mars/Base"\n')
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, settings)
    problems = "\n".join(caught.value.problems)
    assert "teams[0].slack_channel: 'leads room' is not a Slack channel" in problems
    assert "teams[0].timezone: unknown timezone 'Mars/Base'" in problems
    assert "slack.digest_time: '9am' is not a time of day" in problems
    assert "slack.burst_limit: must be 1 or more" in problems
    assert "slack.snooze: unknown key" in problems


async def test_alerts_go_to_the_team_channel(slack_client, rig, clock, fake_slack):
    ref = await post_message(slack_client, AUTH, "My invoice is wrong", email="team@customer.example")
    clock.advance(timedelta(seconds=50))
    await rig.scan()
    await rig.deliver()
    [message] = fake_slack.posts()
    assert message.channel == CHANNELS["#tokyo-leads"] and f"|{ref} " in message.all_text()


async def test_one_digest_per_team_and_day_at_the_local_time(slack_client, rig, clock, fake_slack):
    clock.now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # yesterday, 10:00 in Tokyo
    late = await post_message(slack_client, AUTH, "My invoice is wrong", email="late@customer.example")
    await post_message(slack_client, AUTH, "Refund please", email="ontime@customer.example")
    await slack_client.post("/api/v1/tickets/T-1002/replies", headers=AIKO, json={"text": "Done"})
    clock.advance(timedelta(seconds=101))
    assert [(e.ticket_ref, e.kind) for e in await rig.scan() if e.kind == "breach"] == [(late, "breach")]
    await slack_client.post(f"/api/v1/tickets/{late}/replies", headers=AIKO, json={"text": "Sorry, done"})
    await post_message(slack_client, AUTH, "Where is my parcel?", email="open@customer.example")
    await rig.deliver()
    fake_slack.messages.clear()

    clock.now = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)  # 08:59 in Tokyo
    assert await rig.upkeep() == 0
    clock.now = datetime(2026, 11, 25, 0, 0, 30, tzinfo=UTC)  # 09:00:30 in Tokyo
    other_process = Upkeep(rig.pool, rig.clock, lambda: rig.config)
    assert await rig.upkeep() + await other_process.run_once() == 1
    assert await rig.upkeep() == 0
    await rig.deliver()
    [digest] = fake_slack.posts()
    assert digest.channel == CHANNELS["#tokyo-leads"]
    text = digest.all_text()
    assert "Daily SLA digest for support, 2026-11-25" in text
    assert "*Breaches yesterday*\n1" in text
    assert "*SLA compliance yesterday*\n50% (1/2)" in text  # one answered in time, one late
    assert "*Agents online*\nAiko Tanaka (2/5), Ben Carter (1/5), Chie Sato (0/5)" in text  # load/capacity
    assert "*At risk now: 1*" in text and "T-1003" in text  # opened yesterday, never answered
    assert "<http://router.test/inbox?view=at_risk|Open the At risk view>" in text
    assert "*Queue now*\n0 waiting" in text
