"""Fixtures of the feedback tests: mail out to the local SMTP sink, the survey scheduler on the test
clock, and the steps of a ticket's life through the API."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from router.config import Config, CsatConfig
from router.core.csat import Scheduler
from router.core.outbound import Dispatcher
from router.workers import senders_for

LINK = re.compile(r"http://127\.0\.0\.1:8000/csat/([A-Za-z0-9_.\-]+)(?:\?score=(\d+))?")


def with_csat(config: Config, **changes: object) -> Config:
    return replace(config, csat=replace(config.csat, **changes))


@pytest.fixture
def mail_config(config: Config, sink) -> Config:
    return replace(config, settings=replace(config.settings, smtp_relay=f"smtp://127.0.0.1:{sink.port}"))


@pytest.fixture
def scheduler(pool, clock, mail_config, app) -> Scheduler:
    """The scheduler reading the app's configuration (tests change it with `use_config`)."""
    svc = app.state.services
    svc.config = mail_config
    return Scheduler(pool, clock, lambda: svc.config)


@pytest.fixture
def use_config(app):
    """Apply `config` to the running app (its pipeline and the scheduler read it)."""
    async def use(config: Config) -> None:
        await app.state.services.apply_config(config)
    return use


@pytest.fixture
def dispatcher(pool, clock, mail_config) -> Dispatcher:
    return Dispatcher(pool, senders_for(mail_config), clock)


async def reply_and_solve(client: httpx.AsyncClient, auth: dict[str, str], ref: str) -> None:
    response = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Here is your answer."},
                                 headers=auth)
    assert response.status_code in (200, 201, 202), response.text
    response = await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    assert response.status_code == 200, response.text


def surveys(sink) -> list:
    return [m for m in sink.messages if LINK.search(m.get_body(("plain",)).get_content())]


def links(message) -> dict[int, str]:
    """score → token of the one-click links in a survey mail's text."""
    found = {int(score): token for token, score in LINK.findall(message.get_body(("plain",)).get_content()) if score}
    assert len(set(found.values())) == 1, found
    return found


async def survey_rows(pool) -> list:
    return [dict(r) for r in await pool.fetch(
        "SELECT r.*, t.number FROM csat_responses r JOIN tickets t ON t.id = r.ticket_id ORDER BY r.id")]


async def decision(pool, ref: str) -> str | None:
    outcome: str | None = await pool.fetchval(
        "SELECT d.outcome FROM csat_decisions d JOIN tickets t ON t.id = d.ticket_id WHERE t.number = $1",
        int(ref[2:]))
    return outcome


HOUR = timedelta(hours=1)
DEFAULTS = CsatConfig()
