"""`router demo`'s social traffic (issue 11): signed as each platform signs it, with the secrets a
`router serve` on the built-in demo config verifies with (derived from the install's secret key when
the environment names none), it lands in the inbox as one ticket per channel; a second run is new
traffic, not a retry."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from router.app import create_app
from router.demo import social_requests, social_settings, with_demo_channel_secrets
from tests.conftest import make_settings

CHANNELS = ["instagram", "line", "messenger", "telegram", "whatsapp"]


def test_the_demo_secrets_are_derived_from_the_secret_key_and_never_replace_a_set_one(data_dir):
    settings = make_settings(data_dir)
    derived = with_demo_channel_secrets(settings)
    assert derived == with_demo_channel_secrets(settings)  # the server and `router demo` agree
    secrets = {derived.meta_app_secret, derived.meta_verify_token, derived.line_channel_secret,
               derived.telegram_secret_token}
    assert len(secrets) == 4 and all(secret and len(secret) >= 32 for secret in secrets)
    other = with_demo_channel_secrets(replace(settings, secret_key="another install"))
    assert other.meta_app_secret != derived.meta_app_secret
    named = with_demo_channel_secrets(replace(settings, line_channel_secret="from-the-environment"))
    assert named.line_channel_secret == "from-the-environment"
    assert (derived.meta_access_token, derived.line_channel_token, derived.telegram_bot_token) == (None, None, None)


def test_a_config_file_gets_no_demo_secrets(data_dir, tmp_path):
    assert social_settings(make_settings(data_dir, config_path=tmp_path / "router.toml")).meta_app_secret is None
    assert social_settings(make_settings(data_dir)).meta_app_secret is not None


@pytest.fixture
def settings(data_dir):
    return with_demo_channel_secrets(make_settings(data_dir))


async def test_every_social_channel_of_the_demo_lands_in_the_inbox(config, pool, clock, auth):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config, pool=pool, clock=clock)),
                                 base_url="http://router.test") as client:
        for run in (1_764_000_000.0, 1_764_000_090.5):
            requests = social_requests(config.settings, run)
            assert sorted(label for label, _, _ in requests) == CHANNELS
            for label, _, (path, body, headers) in requests:
                answer = await client.post(path, content=body, headers=headers)
                assert answer.status_code == 200, (label, answer.text)
                assert answer.json()["stored"] == 1, label
        listing = await client.get("/api/v1/tickets", params={"limit": "50"}, headers=auth)
    channels = sorted(ticket["channel"] for ticket in listing.json()["tickets"])
    assert channels == CHANNELS  # the second run joined each customer's open ticket
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'") == 2 * len(CHANNELS)
