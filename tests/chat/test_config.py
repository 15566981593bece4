"""The `[chat]` section: defaults, overrides, and mistakes named with their line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.config import ChatConfig, ConfigError, Settings, demo_config_text, parse_config


def test_chat_limits_have_defaults_and_can_be_set(settings: Settings) -> None:
    assert parse_config(demo_config_text(), settings).chat == ChatConfig()
    chat = parse_config(demo_config_text() + """
[chat]
max_message_chars = 2000
messages_per_minute = 10
messages_per_minute_per_ip = 30
connections_per_ip = 5
idle_timeout = "2m"
offline_after = "90s"
allowed_origins = ["https://shop.example.com/", "https://www.example.co.jp"]
""", settings).chat
    assert chat == ChatConfig(max_message_chars=2000, messages_per_minute=10, messages_per_minute_per_ip=30,
                              connections_per_ip=5, idle_timeout=timedelta(minutes=2),
                              offline_after=timedelta(seconds=90),
                              allowed_origins=("https://shop.example.com", "https://www.example.co.jp"))


def test_chat_mistakes_are_named_with_their_line(settings: Settings) -> None:
    text = demo_config_text() + '\n[chat]\nconnections_per_ip = 0\nallowed_origins = ["shop.example.com"]\nbogus = 1\n'
    with pytest.raises(ConfigError) as refused:
        parse_config(text, settings)
    problems = "\n".join(refused.value.problems)
    lines = len(demo_config_text().splitlines())
    assert f":{lines + 3}: chat.connections_per_ip: must be 1 or more" in problems
    assert f":{lines + 4}: chat.allowed_origins: 'shop.example.com' is not an origin" in problems
    assert f":{lines + 5}: chat.bogus: unknown key" in problems
