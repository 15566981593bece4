"""The Slack fixtures (`tests.channels.slack.fixtures`) for every test in this folder."""

from tests.channels.slack.fixtures import fake_slack, rig, slack_client, slack_config  # noqa: F401
