"""`[csat]` in the config file: defaults, values, and clear line-level problems."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.config import ConfigError, demo_config_text, parse_config


def test_defaults_when_the_section_is_absent(settings):
    csat = parse_config(demo_config_text(), settings).csat
    assert (csat.enabled, csat.delay, csat.link_expiry, csat.quiet_days, csat.nps, csat.nps_every_days) == (
        True, timedelta(hours=1), timedelta(days=14), 7, False, 90)


def test_values_are_read(settings):
    text = demo_config_text() + '\n[csat]\ndelay = "30m"\nlink_expiry = "7d"\nquiet_days = 0\nnps = true\n' \
                                'nps_every_days = 60\n'
    csat = parse_config(text, settings).csat
    assert (csat.delay, csat.link_expiry, csat.quiet_days, csat.nps, csat.nps_every_days) == (
        timedelta(minutes=30), timedelta(days=7), 0, True, 60)


def test_problems_name_the_line(settings):
    text = demo_config_text() + '\n[csat]\ndelay = "soon"\nquiet_days = -1\nnps_every_days = 0\nsurvey = 1\n'
    first_line = len(demo_config_text().splitlines()) + 2
    with pytest.raises(ConfigError) as caught:
        parse_config(text, settings, source="router.toml")
    problems = "\n".join(caught.value.problems)
    assert f"router.toml:{first_line + 1}: csat.delay:" in problems
    assert f"router.toml:{first_line + 2}: csat.quiet_days: must be 0" in problems
    assert f"router.toml:{first_line + 3}: csat.nps_every_days: must be 1 or more" in problems
    assert "csat.survey: unknown key" in problems
