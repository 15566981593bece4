"""Slack alerts end to end: a real `router serve` talking to a local server that speaks Slack's Web
API. It runs on a fresh database of the test PostgreSQL (`DATABASE_URL`), which spares the minute of
starting an embedded server of its own. A mail over SMTP opens a ticket on a policy with an 8-second first
response; the lead's channel gets the warning card at half-time, the same message turns into the
breach, and into "answered" once an agent replies through the API."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx

from tests.channels.slack.fake_slack import CHANNELS, SIGNING_SECRET, TOKEN, FakeSlack, Message
from tests.channels.slack.fixtures import slack_config_text
from tests.e2e.helpers import API_TOKEN, Serve

POLICY = """
[[sla_policies]]
name = "e2e-fast"
first_response = "8s"
calendar = "24x7"
warn_at = [0.5]
"""
TIMEOUT = 30.0


async def until(what: str, check: Callable[[], bool], serve: Serve) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {TIMEOUT}s for {what}\n{serve.log_tail()}")
        await asyncio.sleep(0.1)


def the_card(fake: FakeSlack) -> Message | None:
    posts = fake.posts()
    return posts[0] if posts else None


async def test_warning_then_breach_then_answered_in_one_message(tmp_path: Path, database: str):
    fake = FakeSlack()
    await fake.start()
    config = tmp_path / "router.toml"
    config.write_text(slack_config_text(policy=POLICY), encoding="utf-8")
    serve = Serve(tmp_path)
    serve.env.update(DATABASE_URL=database, ROUTER_CONFIG=str(config), SLACK_BOT_TOKEN=TOKEN,
                     SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_ALERT_CHANNEL="#alerts", SLACK_API_URL=fake.api_url)
    try:
        serve.start()
        await asyncio.to_thread(serve.wait_ready)
        mail = EmailMessage()
        mail["From"] = "Mori Kenji <kenji@customer.example>"
        mail["To"] = "support@example.com"
        mail["Subject"] = "Invoice charged twice"
        mail["Message-ID"] = "<e2e-slack-1@customer.example>"
        mail.set_content("My invoice was charged twice. Please refund.")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=10) as smtp:
                smtp.send_message(mail)

        await asyncio.to_thread(send)
        async with httpx.AsyncClient(base_url=serve.base_url, timeout=10) as client:
            [ticket] = (await client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {API_TOKEN}"})).json()[
                "tickets"]
            ref = ticket["ref"]

            await until("the warning card", lambda: the_card(fake) is not None, serve)
            card = the_card(fake)
            assert card is not None and card.channel == CHANNELS["#alerts"]
            assert card.text.startswith(f":warning: {ref} at risk") and f"|{ref} Invoice charged twice>" in (
                card.all_text())
            await until("the breach", lambda: card.text.startswith(":rotating_light:"), serve)
            assert f"{ref} breached: first response" in card.text

            reply = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Refunded, sorry!"},
                                      headers={"Authorization": "Bearer demo-aiko"})
            assert reply.status_code == 201, reply.text
            await until("the answered card", lambda: card.text.startswith(":white_check_mark:"), serve)
            assert "Answered by Aiko Tanaka at " in card.all_text()
        assert len(fake.called("chat.postMessage")) == 1  # one message, updated in place
        states = [version[0]["text"]["text"].split(" ")[0] for version in card.versions]
        assert states[0] == ":warning:" and states[-1] == ":white_check_mark:" and ":rotating_light:" in states
        assert states.index(":rotating_light:") < len(states) - 1
    finally:
        await asyncio.to_thread(serve.close)
        with contextlib.suppress(Exception):
            await fake.stop()
