"""What a lead reads about a ticket at risk, composed from plain facts (no database, no Slack), and
laid out as Block Kit with every customer-written text made inert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from channels.slack import blocks
from sla.alerts import AlertedClock, TicketFacts, card_state, compose_card, local_time, span, summary_line

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
FACTS = TicketFacts(
    ticket_id=1, ref="T-1042", url="https://support.example/inbox/T-1042", subject="Refund <@U0BOSS>", status="open",
    priority="high", channel="email", customer_name="Kenji & Co", tier="vip", team="support",
    assignee_email="aiko@example.com", assignee_name="Aiko Tanaka", answered_by=None, answered_at=None,
    solved_by=None, solved_at=None)


def clock(target="first_response", *, due_in=600, breached=False, warned=True, level=1, fraction=0.75, met=None,
          paused=False):
    return AlertedClock(target=target, warned=warned, breached=breached, level=level, fraction=fraction,
                        started_at=NOW - timedelta(hours=1), due_at=NOW + timedelta(seconds=due_in), met_at=met,
                        paused=paused)


def test_spans_read_like_a_person_says_them():
    assert [span(timedelta(seconds=s)) for s in (0, 45, 60, 725, 3900, 90000, -5)] == [
        "0s", "45s", "1m", "12m", "1h 05m", "1d 1h", "0s"]


def test_times_are_shown_in_the_teams_timezone():
    assert local_time(NOW + timedelta(minutes=45), "Asia/Tokyo", NOW) == "10:45 JST"
    assert local_time(NOW + timedelta(days=1), "Asia/Tokyo", NOW) == "Thu 26 Nov 10:00 JST"
    assert local_time(NOW, "Europe/Berlin", NOW) == "02:00 CET"


def test_the_state_is_the_worst_running_clock():
    assert card_state(FACTS, [clock()]) == "warning"
    assert card_state(FACTS, [clock(), clock("resolution", breached=True, due_in=-60)]) == "breach"
    assert card_state(FACTS, [clock(breached=True, met=NOW)]) == "resolved"
    assert card_state(FACTS, [clock(warned=False)]) == "ok"
    assert card_state(replace(FACTS, status="solved"), [clock(breached=True)]) == "resolved"
    assert card_state(FACTS, []) == "resolved"


def test_a_warning_card_says_what_why_and_how_long_is_left():
    card = compose_card(FACTS, [clock()], timezone="Asia/Tokyo", now=NOW, assignee_chat_id="U0AIKO")
    assert card.headline == "T-1042 at risk: first response due in 10m" and card.actions
    [line] = card.clocks
    assert (line.label, line.status, line.due) == ("First response", "10m left (75% warning)", "10:10 JST")


def test_a_breach_card_says_how_late():
    card = compose_card(FACTS, [clock(breached=True, due_in=-725)], timezone="Asia/Tokyo", now=NOW)
    assert card.state == "breach" and card.headline == "T-1042 breached: first response 12m late"
    assert card.clocks[0].status == "12m late"


def test_a_resolved_card_says_who_answered_or_solved_and_when():
    answered = replace(FACTS, answered_by="Aiko Tanaka", answered_at=NOW - timedelta(minutes=3))
    card = compose_card(answered, [clock(met=NOW - timedelta(minutes=3))], timezone="Asia/Tokyo", now=NOW)
    assert (card.state, card.resolution, card.actions) == ("resolved", "Answered by Aiko Tanaka at 09:57 JST", False)
    solved = replace(answered, status="solved", solved_by="Ben Carter", solved_at=NOW)
    assert compose_card(solved, [clock()], timezone="Asia/Tokyo", now=NOW).resolution == "Solved by Ben Carter at" \
                                                                                          " 10:00 JST"


def test_customer_text_cannot_ping_or_forge_links_in_slack():
    text, layout = blocks.card(compose_card(replace(FACTS, customer_name="<!channel> <https://evil|x>"), [clock()],
                                            timezone="Asia/Tokyo", now=NOW))
    rendered = repr(layout) + text
    assert "<!channel>" not in rendered and "<@U0BOSS>" not in rendered and "<https://evil" not in rendered
    assert "&lt;!channel&gt; &lt;https://evil|x&gt;" in rendered
    assert "<https://support.example/inbox/T-1042|T-1042 Refund &lt;@U0BOSS&gt;>" in rendered


@given(st.text(max_size=4000))
def test_any_subject_stays_inert_and_within_slacks_limits(subject):
    card = compose_card(replace(FACTS, subject=subject, customer_name=subject), [clock(), clock("resolution")],
                        timezone="Asia/Tokyo", now=NOW, activity=[subject] * 12)
    _, layout = blocks.card(card)
    link = "<https://support.example/inbox/T-1042|"
    for block in layout:
        for text in [block.get("text", {}).get("text", "")] + [f["text"] for f in block.get("fields", [])] + [
                e.get("text", "") for e in block.get("elements", []) if block["type"] == "context"]:
            assert len(text) <= 3000
            assert text.count("<") == text.count(link)  # our own link, nothing the customer wrote


def test_summary_lines_name_the_most_pressing_clock():
    line = summary_line(FACTS, [clock("resolution", due_in=3600), clock(breached=True, due_in=-120)], now=NOW)
    assert (line.state, line.status) == ("breach", "First response 2m late")
