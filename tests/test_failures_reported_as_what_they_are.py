"""Failures are reported as what they are: our disk is not the database, and there is no fallback key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from aiosmtpd.smtp import Envelope

from router.app import create_app
from router.config import demo_config_text, parse_config
from router.core.pipeline import Pipeline
from router.workers import smtp_intake_handler
from tests.conftest import make_settings


@pytest.fixture
def broken_disk_config(tmp_path: Path):
    """A data dir that is a file: every write below it fails with an OSError, like a full disk."""
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data dir should be")
    return parse_config(demo_config_text(), make_settings(not_a_dir))


async def test_a_disk_failure_while_storing_an_attachment_is_a_507_not_a_database_outage(
        broken_disk_config, pool, clock):
    app = create_app(broken_disk_config, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as client:
        response = await client.post("/support", data={"email": "d@example.net", "message": "see attached"},
                                     files={"attachments": ("log.txt", b"error log", "text/plain")},
                                     headers={"Accept": "application/json"})
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "storage_failed"
    assert "disk" in response.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0  # nothing half-stored


async def test_a_disk_failure_on_smtp_is_a_451_local_error_not_a_database_outage(broken_disk_config, pool, clock):
    handler = smtp_intake_handler(broken_disk_config, pool, lambda: Pipeline(broken_disk_config, clock))
    envelope = Envelope()
    envelope.mail_from = "d@example.net"
    envelope.rcpt_tos = ["support@example.com"]
    envelope.original_content = b"From: d@example.net\r\nSubject: hi\r\nMessage-ID: <d1@example.net>\r\n\r\nhello\r\n"
    answer = await handler.handle_DATA(None, None, envelope)
    assert answer == "451 4.3.0 Requested action aborted: local error in processing"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


def test_the_app_refuses_to_start_without_a_secret_key(settings, pool):
    config = parse_config(demo_config_text(), replace(settings, secret_key=""))
    with pytest.raises(ValueError, match="ROUTER_SECRET_KEY"):
        create_app(config, pool=pool)
