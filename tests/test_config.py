"""Config: durations, the demo config, template placeholders, and `router check-config` errors with line numbers."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from router.config import (
    ConfigError,
    Settings,
    demo_config_text,
    ensure_secret_key,
    parse_config,
    parse_duration,
    settings_from_env,
)


@pytest.mark.parametrize("text, expected", [
    ("45s", timedelta(seconds=45)), ("30m", timedelta(minutes=30)), ("4h", timedelta(hours=4)),
    ("2d", timedelta(days=2)), ("1w", timedelta(weeks=1)), ("1h30m", timedelta(minutes=90)),
    (" 2h 15m ", timedelta(minutes=135)),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "-4h", "4.5h", "four hours"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_demo_config_matches_spec(settings):
    config = parse_config(demo_config_text(), settings)
    assert config.service.timezone == "Asia/Tokyo"
    assert config.service.support_address == "support@example.com"
    assert {a.email: (a.languages, a.skills) for a in config.agents} == {
        "aiko@example.com": (("ja", "en"), ("billing", "shipping")),
        "ben@example.com": (("en",), ("technical", "billing")),
        "chie@example.com": (("ja",), ("technical",)),
        "lena@example.com": (("en", "ja"), ()),
    }
    assert [p.name for p in config.sla_policies] == ["urgent", "vip", "normal"]
    normal = config.sla_policies[2]
    assert (normal.first_response, normal.next_response, normal.resolution) == (
        timedelta(hours=4), timedelta(hours=8), timedelta(days=3))
    assert set(config.calendars) == {"jp-business", "24x7"}
    assert "請求" in next(t for t in config.topics if t.name == "billing").keywords


BROKEN = """\
[service]
timezone = "Mars/Olympus"
mail_domains = ["example.com"]
reopen_window = "soon"

[[calendars]]
name = "office"
timezone = "Asia/Tokyo"
hours = { mon = "18:00-09:00" }

[[sla_policies]]
name = "fast"
first_response = "30m"
calendar = "nowhere"
warn_at = 1.5

[[agents]]
email = "x@example.com"
team = "ghosts"
capacity = -1
colour = "blue"

[[topics]]
name = "billing"
patterns = ["([unclosed"]
"""


def test_problems_are_reported_with_line_numbers(settings):
    with pytest.raises(ConfigError) as caught:
        parse_config(BROKEN, settings, source="router.toml")
    problems = "\n".join(caught.value.problems)
    assert "router.toml:2: service.timezone: unknown timezone 'Mars/Olympus'" in problems
    assert "router.toml:4: service.reopen_window: 'soon' is not a duration" in problems
    assert "router.toml:9: calendars[0].hours:" in problems
    assert "router.toml:14: sla_policies[0].calendar: unknown calendar 'nowhere'" in problems
    assert "router.toml:15: sla_policies[0].warn_at: must be a fraction" in problems
    assert "router.toml:19: agents[0].team: unknown team 'ghosts'" in problems
    assert "router.toml:20: agents[0].capacity: must be 0 or more" in problems
    assert "router.toml:21: agents[0].colour: unknown key" in problems
    assert "router.toml:25: topics[0].patterns: bad regular expression" in problems


def test_toml_syntax_error_names_the_line(settings):
    with pytest.raises(ConfigError) as caught:
        parse_config("[service]\ntimezone = \n", settings, source="x.toml")
    assert "line 2" in caught.value.problems[0]


def test_check_config_cli(tmp_path: Path):
    good = tmp_path / "good.toml"
    good.write_text(demo_config_text(), encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN, encoding="utf-8")
    ok = subprocess.run([sys.executable, "-m", "router.cli", "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK — 4 agents" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "router.cli", "check-config", str(bad)], capture_output=True,
                            text=True)
    assert failed.returncode == 1
    assert f"{bad}:4: service.reopen_window" in failed.stderr
    assert "problem(s) found" in failed.stderr


def test_environment_settings(tmp_path):
    settings = settings_from_env({"ROUTER_DATA_DIR": str(tmp_path), "ROUTER_HTTP_PORT": "9001",
                                  "ROUTER_API_TOKEN": "t", "DATABASE_URL": "postgresql://x/y"})
    assert (settings.http_port, settings.api_token, settings.database_url) == (9001, "t", "postgresql://x/y")
    assert settings.public_url == "http://127.0.0.1:9001"
    with pytest.raises(ConfigError, match="ROUTER_SMTP_PORT"):
        settings_from_env({"ROUTER_SMTP_PORT": "lots"})


def test_a_generated_secret_key_is_kept_in_the_data_dir_and_reused(tmp_path):
    first = ensure_secret_key(Settings(database_url=None, data_dir=tmp_path, config_path=None))
    second = ensure_secret_key(Settings(database_url=None, data_dir=tmp_path, config_path=None))
    assert len(first.secret_key) >= 40 and first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_template_typo_is_a_config_error_not_a_broken_ingest(settings):
    text = demo_config_text() + '\n[templates.ack]\nen = "Thanks {name}, ticket {ref} due {due}"\n'
    with pytest.raises(ConfigError, match=r"templates\.ack\.en: unknown placeholder \{name\}"):
        parse_config(text, settings)


def test_smtp_limits_come_from_the_service_table(settings):
    text = demo_config_text().replace("[service]", "[service]\nsmtp_max_connections_per_ip = 5\n"
                                      "smtp_idle_timeout = \"30s\"\nsmtp_large_messages_at_once = 2", 1)
    service = parse_config(text, settings).service
    assert (service.smtp_max_connections_per_ip, service.smtp_idle_timeout, service.smtp_large_messages_at_once,
            service.smtp_max_connections) == (5, timedelta(seconds=30), 2, 500)
    with pytest.raises(ConfigError, match="smtp_max_connections: must be 1 or more"):
        parse_config(demo_config_text().replace("[service]", "[service]\nsmtp_max_connections = 0", 1), settings)
