"""Who gets a survey and who does not: auto-replies, merged-away tickets, tickets nobody answered and
customers surveyed recently get none; two processes deciding at once send one survey per ticket; NPS
takes one resolution's place at most once per interval."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from aiosmtpd.smtp import Envelope

from router.core.csat import Scheduler
from router.workers import smtp_intake_handler
from tests.conftest import post_message
from tests.csat.conftest import HOUR, decision, links, reply_and_solve, survey_rows, surveys, with_csat
from tests.e2e.test_email import mail

DAY = timedelta(days=1)


async def test_auto_reply_tickets_are_not_surveyed(app, pool, mail_config, scheduler, dispatcher, sink, client,
                                                   auth, clock):
    handler = smtp_intake_handler(mail_config, pool, lambda: app.state.services.pipeline)
    envelope = Envelope()
    envelope.mail_from = "bob@customer.example"
    envelope.rcpt_tos = ["support@example.com"]
    envelope.original_content = mail("Bob <bob@customer.example>", "Automatic reply: away", "I am out of office.",
                                     Auto_Submitted="auto-replied").as_bytes()
    assert (await handler.handle_DATA(None, None, envelope)).startswith("250")
    [ticket] = (await client.get("/api/v1/tickets", headers=auth)).json()["tickets"]
    await reply_and_solve(client, auth, ticket["ref"])  # an agent answered it anyway
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    assert await decision(pool, ticket["ref"]) == "automated"
    assert await survey_rows(pool) == []
    await dispatcher.run_once()
    assert surveys(sink) == []


async def test_merged_away_tickets_are_not_surveyed(scheduler, client, auth, clock, pool):
    first = await post_message(client, auth, "My invoice is wrong", email="kim@customer.example")
    second = await post_message(client, auth, "Invoice question", sender_id="kim-chat", channel="chat")
    ids = []
    for ref in (first, second):
        ids.append((await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["customer"]["id"])
    merged = await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": ids[1]}, headers=auth)
    assert merged.status_code == 200, merged.text
    # The merged-away ticket is closed; an agent then marks it solved by mistake, after answering the thread.
    await reply_and_solve(client, auth, first)
    solved = await client.patch(f"/api/v1/tickets/{second}", json={"status": "solved"}, headers=auth)
    assert solved.status_code == 200, solved.text
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 2
    assert await decision(pool, second) == "merged"
    assert [r["number"] for r in await survey_rows(pool)] == [int(first[2:])]


async def test_tickets_solved_without_an_agent_reply_are_not_surveyed(scheduler, client, auth, clock, pool):
    ref = await post_message(client, auth, "spam spam spam", email="spam@customer.example")
    assert (await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)).status_code == 200
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    assert await decision(pool, ref) == "no_reply"
    assert await survey_rows(pool) == []


async def test_a_customer_surveyed_within_the_quiet_period_gets_no_other_survey(scheduler, client, auth, clock,
                                                                                pool, use_config, mail_config):
    short_reopen = replace(mail_config.service, reopen_window=HOUR)  # each question is a ticket of its own
    await use_config(replace(with_csat(mail_config, quiet_days=7), service=short_reopen))

    async def solved_ticket(text: str) -> str:
        ref = await post_message(client, auth, text, email="lee@customer.example")
        await reply_and_solve(client, auth, ref)
        clock.advance(2 * HOUR)
        assert await scheduler.run_once() == 1
        return ref

    first = await solved_ticket("Where is my parcel?")
    clock.advance(5 * DAY)
    second = await solved_ticket("Another question")
    assert await decision(pool, second) == "quiet"
    clock.advance(2 * DAY)  # the first survey is 7 days and 4 hours old now
    third = await solved_ticket("A third question")
    assert await decision(pool, third) == "csat"
    assert [r["number"] for r in await survey_rows(pool)] == [int(first[2:]), int(third[2:])]


async def test_two_schedulers_at_once_send_one_survey_per_ticket(scheduler, pool, clock, client, auth, app,
                                                                 dispatcher, sink):
    refs = [await post_message(client, auth, f"question {i}", email=f"c{i}@customer.example") for i in range(8)]
    for ref in refs:
        await reply_and_solve(client, auth, ref)
    clock.advance(2 * HOUR)
    other = Scheduler(pool, clock, lambda: app.state.services.config)
    decided = await asyncio.gather(scheduler.run_once(), other.run_once(), scheduler.run_once(), other.run_once())
    assert sum(decided) == 8
    assert sorted(r["number"] for r in await survey_rows(pool)) == sorted(int(ref[2:]) for ref in refs)
    while await dispatcher.run_once():
        pass
    assert sorted(m["To"] for m in surveys(sink)) == sorted(f"c{i}@customer.example" for i in range(8))


async def test_a_ticket_solved_long_before_the_scheduler_saw_it_is_not_surveyed(scheduler, client, auth, clock,
                                                                                pool):
    ref = await post_message(client, auth, "old question", email="old@customer.example")
    await reply_and_solve(client, auth, ref)
    clock.advance(5 * DAY)  # the workers were stopped meanwhile
    assert await scheduler.run_once() == 0
    assert await survey_rows(pool) == []


async def test_nps_goes_out_once_per_interval_instead_of_csat(scheduler, client, auth, clock, pool, use_config,
                                                              mail_config, dispatcher, sink):
    await use_config(replace(with_csat(mail_config, nps=True, nps_every_days=90, quiet_days=0),
                       service=replace(mail_config.service, reopen_window=HOUR)))
    first = await post_message(client, auth, "Question one", email="nps@customer.example")
    await reply_and_solve(client, auth, first)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    await dispatcher.run_once()
    [survey] = surveys(sink)
    assert survey["Subject"] == f"[{first}] Would you recommend us?"
    scores = links(survey)
    assert sorted(scores) == list(range(11))
    page = await client.get(f"/csat/{scores[9]}", params={"score": "9"})
    assert page.status_code == 200 and "We recorded your answer: 9" in page.text

    second = await post_message(client, auth, "Question two", email="nps@customer.example")
    await reply_and_solve(client, auth, second)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    rows = await survey_rows(pool)
    assert [(r["kind"], r["score"]) for r in rows] == [("nps", 9), ("csat", None)]
    assert rows[0]["agent_id"] is None  # NPS rates the company, not an agent


async def test_messaging_channels_get_one_short_line_with_the_page_link(scheduler, client, auth, clock, pool):
    ref = await post_message(client, auth, "The app crashes on start", sender_id="visitor-7", channel="chat")
    await reply_and_solve(client, auth, ref)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    item = await pool.fetchrow("SELECT channel, payload FROM outbox WHERE kind = 'csat'")
    assert item["channel"] == "chat"
    text = item["payload"]["text"]
    assert text.startswith(f"How did we do with {ref}? Tell us in one tap: http://127.0.0.1:8000/csat/")
    assert "?score=" not in text and "\n" not in text
    assert "html" not in item["payload"]
