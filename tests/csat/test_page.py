"""The survey page `/csat/{token}`: one click records a score and a second changes it; a forged, altered
or expired link shows a clear page and records nothing; the optional comment; Japanese and English; a
low score becomes an event on the ticket and a Slack message for the team."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from channels.slack.api import SlackApi
from router.core.alerts import AlertDelivery
from router.core.csat import make_token
from router.core.outbound import Dispatcher
from tests.channels.slack.fake_slack import TOKEN, FakeSlack
from tests.conftest import post_message
from tests.csat.conftest import HOUR, LINK, reply_and_solve, survey_rows, with_csat


async def survey_tokens(pool) -> dict[int, str]:
    """score → token, from the text of the queued survey."""
    text = await pool.fetchval("SELECT payload->>'text' FROM outbox WHERE kind IN ('csat', 'nps')")
    return {int(score): token for token, score in LINK.findall(text) if score}


@pytest.fixture
async def surveyed(client, auth, clock, scheduler, pool) -> tuple[str, dict[int, str]]:
    ref = await post_message(client, auth, "My invoice is wrong", email="mia@customer.example", name="Mia")
    await reply_and_solve(client, auth, ref)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    return ref, await survey_tokens(pool)


async def ticket_events(pool, ref: str) -> list[str]:
    return [r["kind"] for r in await pool.fetch(
        "SELECT e.kind FROM events e JOIN tickets t ON t.id = e.ticket_id WHERE t.number = $1"
        " AND e.kind LIKE 'csat.%' ORDER BY e.id", int(ref[2:]))]


async def test_a_second_click_changes_the_score_and_never_adds_one(surveyed, client, pool, clock):
    ref, tokens = surveyed
    assert (await client.get(f"/csat/{tokens[2]}", params={"score": "2"})).status_code == 200
    clock.advance(timedelta(minutes=1))
    again = await client.get(f"/csat/{tokens[2]}", params={"score": "5"})
    assert again.status_code == 200 and "We recorded your answer: Very satisfied" in again.text
    assert 'aria-current="true"' in again.text
    await client.get(f"/csat/{tokens[5]}", params={"score": "5"})  # the same answer once more: no change
    [row] = await survey_rows(pool)
    assert (row["score"], row["answered_at"]) == (5, clock())
    assert await ticket_events(pool, ref) == ["csat.answered", "csat.low", "csat.answered"]


async def test_without_a_score_the_page_asks_the_question(surveyed, client, pool):
    _, tokens = surveyed
    page = await client.get(f"/csat/{tokens[1]}")
    assert page.status_code == 200
    assert "How satisfied are you" in page.text
    assert len(re.findall(r'href="/csat/[^"?]+\?score=\d"', page.text)) == 5
    assert (await survey_rows(pool))[0]["score"] is None


@pytest.mark.parametrize("score", ["0", "6", "x", "", "99999999999999999999", "-1"])
async def test_a_score_outside_the_scale_records_nothing(surveyed, client, pool, score):
    _, tokens = surveyed
    page = await client.get(f"/csat/{tokens[1]}", params={"score": score})
    assert page.status_code == 422
    assert "Please choose one of the answers" in page.text
    assert (await survey_rows(pool))[0]["score"] is None


async def test_forged_or_altered_links_show_a_clear_page_and_record_nothing(surveyed, client, pool, config):
    _, tokens = surveyed
    token = tokens[5]
    payload, signature = token.rsplit(".", 1)
    altered = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature
    [row] = await survey_rows(pool)
    forged = make_token("not-our-secret", row["id"], "en", row["sent_at"] + timedelta(days=30))
    # Signed with our key but for a survey that does not exist: a link we never sent.
    unknown = make_token(config.settings.secret_key, row["id"] + 1000, "en", row["sent_at"] + timedelta(days=30))
    for bad in (altered, forged, unknown, "garbage", token[:-3]):
        page = await client.get(f"/csat/{bad}", params={"score": "5"})
        assert page.status_code == 404, bad
        assert "This link is not valid" in page.text
        posted = await client.post(f"/csat/{bad}", data={"comment": "hello"})
        assert posted.status_code == 404
    row = (await survey_rows(pool))[0]
    assert (row["score"], row["comment"]) == (None, None)


async def test_an_expired_link_shows_a_clear_page_and_records_nothing(surveyed, client, pool, clock):
    ref, tokens = surveyed
    clock.advance(timedelta(days=14))
    page = await client.get(f"/csat/{tokens[4]}", params={"score": "4"})
    assert page.status_code == 410
    assert "This survey link has expired" in page.text
    posted = await client.post(f"/csat/{tokens[4]}", data={"comment": "late"})
    assert posted.status_code == 410
    row = (await survey_rows(pool))[0]
    assert (row["score"], row["comment"]) == (None, None)
    assert await ticket_events(pool, ref) == []


async def test_the_comment_is_kept_and_bounded(surveyed, client, pool):
    ref, tokens = surveyed
    await client.get(f"/csat/{tokens[4]}", params={"score": "4"})
    too_long = await client.post(f"/csat/{tokens[4]}", data={"comment": "x" * 2001})
    assert too_long.status_code == 422
    assert (await survey_rows(pool))[0]["comment"] is None
    huge = await client.post(f"/csat/{tokens[4]}", data={"comment": "x" * 20_000})
    assert huge.status_code == 413
    saved = await client.post(f"/csat/{tokens[4]}", data={"comment": "  Quick and kind <b>thanks</b>  "})
    assert saved.status_code == 200
    assert "Thank you for your comment." in saved.text
    assert "&lt;b&gt;thanks&lt;/b&gt;" in saved.text  # escaped, never markup
    [row] = await survey_rows(pool)
    assert (row["score"], row["comment"]) == (4, "Quick and kind <b>thanks</b>")
    assert await ticket_events(pool, ref) == ["csat.answered", "csat.comment"]


async def test_the_page_needs_no_script_and_no_inline_style(surveyed, client):
    _, tokens = surveyed
    page = await client.get(f"/csat/{tokens[3]}", params={"score": "3"})
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert '<link rel="stylesheet" href="/csat.css">' in page.text
    css = await client.get("/csat.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_japanese_customers_get_a_japanese_survey_and_page(client, auth, clock, scheduler, pool):
    ref = await post_message(client, auth, "請求書の金額が違います。返金をお願いします。",
                             email="sato@customer.example")
    await reply_and_solve(client, auth, ref)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    survey = await pool.fetchrow("SELECT payload FROM outbox WHERE kind = 'csat'")
    assert survey["payload"]["subject"] == f"[{ref}] サポートの対応はいかがでしたか？"
    assert "とても満足" in survey["payload"]["text"] and "とても満足" in survey["payload"]["html"]
    tokens = await survey_tokens(pool)
    page = await client.get(f"/csat/{tokens[5]}", params={"score": "5"}, headers={"Accept-Language": "en"})
    assert '<html lang="ja">' in page.text and "回答「とても満足」を記録しました" in page.text
    # A link we cannot read has no language of its own: the browser's is used.
    bad = await client.get("/csat/nonsense", headers={"Accept-Language": "ja,en;q=0.5"})
    assert bad.status_code == 404 and "このリンクは無効です" in bad.text


@pytest.fixture
async def slack_server():
    server = FakeSlack()
    await server.start()
    yield server
    await server.stop()


async def test_a_low_score_is_an_event_and_a_slack_message_for_the_team(client, auth, clock, scheduler, pool,
                                                                        use_config, mail_config, slack_server):
    slack = replace(mail_config.settings, slack_bot_token=TOKEN, slack_alert_channel="#alerts",
                    slack_api_url=slack_server.api_url)
    slack_config = with_csat(replace(mail_config, settings=slack))
    await use_config(slack_config)
    ref = await post_message(client, auth, "Refund please", email="ola@customer.example", name="Ola")
    await reply_and_solve(client, auth, ref)
    clock.advance(2 * HOUR)
    assert await scheduler.run_once() == 1
    tokens = await survey_tokens(pool)
    await client.get(f"/csat/{tokens[1]}", params={"score": "1"})
    await client.get(f"/csat/{tokens[2]}", params={"score": "2"})  # still low: no second alert
    await client.get(f"/csat/{tokens[4]}", params={"score": "4"})
    assert await ticket_events(pool, ref) == ["csat.answered", "csat.low", "csat.answered", "csat.answered"]
    [alert] = await pool.fetch("SELECT channel, kind, payload FROM outbox WHERE kind = 'csat_low'")
    assert alert["channel"] == "slack"
    assert alert["payload"]["channel"] == "#alerts"
    assert (alert["payload"]["ref"], alert["payload"]["score"]) == (ref, 1)
    delivery = AlertDelivery(pool, SlackApi(TOKEN, slack_server.api_url), clock, lambda: slack_config)
    assert await Dispatcher(pool, {"slack": delivery}, clock).run_once() == 1
    [posted] = slack_server.posts()
    assert posted.text == f"Low satisfaction score: Ola rated {ref} 1/5"
    assert f"<http://127.0.0.1:8000/inbox/{ref}|Open {ref}>" in posted.all_text()


async def test_without_slack_a_low_score_is_only_an_event(surveyed, client, pool):
    ref, tokens = surveyed
    await client.get(f"/csat/{tokens[1]}", params={"score": "1"})
    assert await ticket_events(pool, ref) == ["csat.answered", "csat.low"]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'csat_low'") == 0


async def test_a_head_request_records_nothing(surveyed, client, pool):
    _, tokens = surveyed
    assert (await client.head(f"/csat/{tokens[5]}", params={"score": "5"})).status_code == 200
    assert (await survey_rows(pool))[0]["score"] is None


async def test_the_page_is_rate_limited_per_address(surveyed, client, pool):
    _, tokens = surveyed
    answers = [(await client.get(f"/csat/{tokens[1]}")).status_code for _ in range(25)]
    assert answers[:20] == [200] * 20 and answers[-1] == 429
    assert (await client.get(f"/csat/{tokens[3]}", params={"score": "3"})).status_code == 429
    assert (await survey_rows(pool))[0]["score"] is None
