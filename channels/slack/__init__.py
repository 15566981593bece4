"""Slack for team leads: request verification and payload parsing (pure), Block Kit layouts, and the
Web API client (slack-sdk) that delivers alerts."""
