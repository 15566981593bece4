"""The acceptance story over real sockets: a mail to our SMTP intake becomes a ticket, an agent answers
and solves it, and once it has stayed solved for the delay the survey mail reaches the relay (the SMTP
sink); one click on a score records it and the ticket shows it. A reopen inside the delay sends none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from channels.email.intake import start_server
from router.workers import smtp_intake_handler
from tests.conftest import ORIGIN, free_port, sign_in
from tests.csat.conftest import HOUR, links, reply_and_solve, survey_rows, surveys
from tests.e2e.test_email import mail, smtp_send


@pytest.fixture
async def intake(mail_config, app, pool):
    svc = app.state.services
    port = free_port()
    server = await start_server(smtp_intake_handler(mail_config, pool, lambda: svc.pipeline, svc.metrics),
                                "127.0.0.1", port, hostname="example.com")
    yield port
    server.close()
    await server.wait_closed()


async def only_ticket(client, auth) -> str:
    [ticket] = (await client.get("/api/v1/tickets", headers=auth)).json()["tickets"]
    return ticket["ref"]


async def test_solved_ticket_gets_a_survey_mail_and_one_click_records_the_score(
        intake, scheduler, dispatcher, sink, client, auth, clock, pool):
    original = mail("Tom <tom@customer.example>", "Refund for order 1182", "Please refund my order.")
    await smtp_send(intake, original)
    ref = await only_ticket(client, auth)
    await reply_and_solve(client, auth, ref)
    assert await dispatcher.run_once() == 2  # the acknowledgement and the agent's reply

    clock.advance(HOUR - timedelta(minutes=1))
    assert await scheduler.run_once() == 0  # solved 59 minutes ago: not yet
    clock.advance(timedelta(minutes=2))
    assert await scheduler.run_once() == 1
    assert await scheduler.run_once() == 0  # decided once
    assert await dispatcher.run_once() == 1
    [survey] = surveys(sink)
    assert survey["To"] == "tom@customer.example"
    assert survey["Subject"] == f"[{ref}] How did we do?"
    assert survey["In-Reply-To"] == original["Message-ID"]  # in the customer's thread
    assert survey["Auto-Submitted"] == "auto-replied"  # out-of-office answers stay out of the ticket
    scores = links(survey)
    assert sorted(scores) == [1, 2, 3, 4, 5]
    html = survey.get_body(("html",))  # the same five links as buttons, for mail clients that show HTML
    assert html is not None and html.get_content().count("/csat/") == 5

    page = await client.get(f"/csat/{scores[4]}", params={"score": "4"})
    assert page.status_code == 200
    assert "We recorded your answer: Satisfied" in page.text
    assert '<form method="post"' in page.text and 'name="comment"' in page.text
    [row] = await survey_rows(pool)
    assert (row["number"], row["kind"], row["score"], row["answered_at"]) == (int(ref[2:]), "csat", 4, clock())
    assert row["agent_id"] is not None  # the assignee is who was rated

    csrf = await sign_in(client, "lena@example.com")
    assert csrf
    ticket_page = await client.get(f"/inbox/{ref}")
    assert f'hx-get="/inbox/{ref}/csat"' in ticket_page.text  # the page loads the panel
    panel = await client.get(f"/inbox/{ref}/csat", headers={"HX-Request": "true", "Origin": ORIGIN})
    assert panel.status_code == 200
    assert "CSAT 4/5" in panel.text


async def test_a_reopen_inside_the_delay_sends_no_survey(intake, scheduler, dispatcher, sink, client, auth,
                                                          clock, pool):
    await smtp_send(intake, mail("Ann <ann@customer.example>", "Login error", "I cannot log in."))
    ref = await only_ticket(client, auth)
    await reply_and_solve(client, auth, ref)
    clock.advance(timedelta(minutes=30))
    await smtp_send(intake, mail("Ann <ann@customer.example>", f"Re: [{ref}] Login error", "Still broken."))
    assert await only_ticket(client, auth) == ref  # reopened, not a new ticket
    clock.advance(3 * HOUR)
    assert await scheduler.run_once() == 0
    await dispatcher.run_once()
    assert surveys(sink) == []
    assert await survey_rows(pool) == []

    # Solved again, and this time it stays solved: the delay counts from the new resolution.
    await reply_and_solve(client, auth, ref)
    clock.advance(HOUR + timedelta(seconds=1))
    assert await scheduler.run_once() == 1
    await dispatcher.run_once()
    assert len(surveys(sink)) == 1
