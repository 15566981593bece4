"""Slack alert state: the only writer of `slack_messages`, `slack_bursts`, `slack_people`,
`slack_requests_seen` and `slack_digests`, and the reads that alert cards, summaries, digests and
`/sla` are composed from.

Posting is claimed before the Slack call (`posting_until`) and recorded after it, in two short
transactions: no database connection is held while Slack answers, and two processes never post two
messages for one ticket (or two summaries for one burst). A process that dies in between leaves a
claim that expires (`CLAIM`); the next alert for that ticket may then post again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from router.core.refs import ref
from router.core.store import outbox
from sla.alerts import AgentOnline, AlertedClock, TicketFacts

CLAIM = timedelta(minutes=2)
"""How long a claim to post stands: longer than a Slack call can take (the client's timeout)."""
BURST_WINDOW = timedelta(minutes=1)
PERSON_FRESH = timedelta(hours=24)
NO_PERSON_FRESH = timedelta(hours=1)
"""A cached "no Slack user has this email" is checked again sooner: the person may join Slack."""

Fraction = Callable[[str, int], float | None]
"""(policy name, warning level) → that level's fraction of the budget, when the policy still says."""

_TEAM_OF = "COALESCE(t.team_id, a.team_id)"
"""A ticket's team: its own, else its assignee's. Tickets with neither are everyone's."""


@dataclass(frozen=True)
class MessageRow:
    ticket_id: int
    destination: str
    channel_id: str | None
    ts: str | None
    posted_at: datetime | None
    posting_until: datetime | None
    summary_started_at: datetime | None
    alerting: bool
    snoozed_until: datetime | None
    activity: list[dict[str, Any]]


@dataclass(frozen=True)
class BurstRow:
    destination: str
    started_at: datetime
    channel_id: str | None
    ts: str | None
    posting_until: datetime | None
    version: int
    rendered_version: int


_MESSAGE_COLUMNS = ("ticket_id, destination, channel_id, ts, posted_at, posting_until, summary_started_at, alerting,"
                    " snoozed_until, activity")
_BURST_COLUMNS = "destination, started_at, channel_id, ts, posting_until, version, rendered_version"


# -- facts for cards -----------------------------------------------------------------------------

async def facts_for(conn: asyncpg.Connection, ticket_ids: Sequence[int], *, url_base: str, now: datetime,
                    fraction: Fraction, every_clock: bool = False) -> dict[int, tuple[TicketFacts, list[AlertedClock]]]:
    """Each ticket as its card shows it, with the clocks that alerted in their current cycle (or are
    past their first warning now, for tickets the monitor has not reached yet) — with `every_clock`,
    all its clocks: two round trips."""
    rows = await conn.fetch(
        "SELECT t.id, t.number, t.subject, t.status, t.priority, t.channel, t.solved_at,"
        " c.name AS customer_name, c.tier, a.email AS assignee_email, a.name AS assignee_name,"
        " tm.name AS team, r.name AS answered_by, r.created_at AS answered_at, sv.name AS solved_by"
        " FROM tickets t JOIN customers c ON c.id = t.customer_id"
        " LEFT JOIN agents a ON a.id = t.assignee_id"
        f" LEFT JOIN teams tm ON tm.id = {_TEAM_OF}"
        " LEFT JOIN LATERAL (SELECT ag.name, m.created_at FROM messages m JOIN agents ag ON ag.id = m.author_agent_id"
        "  WHERE m.ticket_id = t.id AND m.direction = 'out' ORDER BY m.created_at DESC, m.id DESC LIMIT 1) r ON true"
        " LEFT JOIN LATERAL (SELECT ag.name FROM events e JOIN agents ag ON ag.id = (e.payload->>'actor')::bigint"
        "  WHERE e.ticket_id = t.id AND e.kind = 'ticket.updated' AND e.payload->'changes'->'status'->>1 = t.status"
        "  ORDER BY e.id DESC LIMIT 1) sv ON t.status IN ('solved', 'closed')"
        " WHERE t.id = ANY($1::bigint[])", list(ticket_ids))
    clocks = await conn.fetch(
        "SELECT s.ticket_id, s.target, s.policy, s.started_at, s.due_at, s.met_at, s.paused_at IS NOT NULL AS paused,"
        " s.warn_at, COALESCE(f.breached, false) AS breached, COALESCE(f.level, 0) AS level, f.ticket_id IS NOT NULL"
        " AS fired FROM sla_targets s LEFT JOIN LATERAL (SELECT e.ticket_id, bool_or(e.kind = 'breach') AS breached,"
        "  max(e.level) FILTER (WHERE e.kind = 'warning') AS level FROM sla_events e"
        "  WHERE e.ticket_id = s.ticket_id AND e.target = s.target AND e.cycle = s.cycle"
        "  GROUP BY e.ticket_id) f ON true"
        " WHERE s.ticket_id = ANY($1::bigint[])", list(ticket_ids))
    found: dict[int, tuple[TicketFacts, list[AlertedClock]]] = {}
    for row in rows:
        number_ref = ref(row["number"])
        facts = TicketFacts(
            ticket_id=row["id"], ref=number_ref, url=f"{url_base}/inbox/{number_ref}", subject=row["subject"],
            status=row["status"], priority=row["priority"], channel=row["channel"],
            customer_name=row["customer_name"], tier=row["tier"], team=row["team"],
            assignee_email=row["assignee_email"], assignee_name=row["assignee_name"],
            answered_by=row["answered_by"], answered_at=row["answered_at"], solved_by=row["solved_by"],
            solved_at=row["solved_at"])
        found[row["id"]] = (facts, [])
    for clock in clocks:
        running_at_risk = clock["met_at"] is None and clock["warn_at"] <= now
        if clock["ticket_id"] not in found or not (clock["fired"] or running_at_risk or every_clock):
            continue
        breached = clock["breached"] or (clock["met_at"] is None and clock["due_at"] <= now)
        level = clock["level"]
        found[clock["ticket_id"]][1].append(AlertedClock(
            target=clock["target"], warned=clock["fired"] or running_at_risk, breached=breached, level=level,
            fraction=fraction(clock["policy"], level) if level else None, started_at=clock["started_at"],
            due_at=clock["due_at"], met_at=clock["met_at"], paused=clock["paused"]))
    return found


async def at_risk(conn: asyncpg.Connection, team: str | None, now: datetime, limit: int) -> list[int]:
    """Active tickets with a clock past its first warning, of `team` (or of no team), soonest due
    first. `team` None: every team's."""
    rows = await conn.fetch(
        "SELECT t.id, min(s.due_at) AS due FROM sla_targets s JOIN tickets t ON t.id = s.ticket_id"
        " LEFT JOIN agents a ON a.id = t.assignee_id"
        " WHERE s.met_at IS NULL AND s.warn_at <= $1 AND t.status IN ('open', 'pending')"
        f" AND ($2::text IS NULL OR {_TEAM_OF} IS NULL"
        f"  OR {_TEAM_OF} = (SELECT id FROM teams WHERE name = $2))"
        " GROUP BY t.id ORDER BY due, t.id LIMIT $3", now, team, limit)
    return [row["id"] for row in rows]


async def ticket_id_of(conn: asyncpg.Connection, number: int) -> int | None:
    found: int | None = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", number)
    return found


# -- one message per ticket ----------------------------------------------------------------------

def _message(row: asyncpg.Record) -> MessageRow:
    return MessageRow(**dict(row))


async def message_for_update(conn: asyncpg.Connection, ticket_id: int) -> MessageRow | None:
    row = await conn.fetchrow(f"SELECT {_MESSAGE_COLUMNS} FROM slack_messages WHERE ticket_id = $1 FOR UPDATE",
                              ticket_id)
    return _message(row) if row else None


async def message(conn: asyncpg.Connection, ticket_id: int) -> MessageRow | None:
    row = await conn.fetchrow(f"SELECT {_MESSAGE_COLUMNS} FROM slack_messages WHERE ticket_id = $1", ticket_id)
    return _message(row) if row else None


async def create_message(conn: asyncpg.Connection, ticket_id: int, destination: str, now: datetime) -> MessageRow:
    """The ticket's message row, created (not posted yet) if it has none, locked."""
    await conn.execute("INSERT INTO slack_messages (ticket_id, destination, updated_at) VALUES ($1, $2, $3)"
                       " ON CONFLICT (ticket_id) DO NOTHING", ticket_id, destination, now)
    found = await message_for_update(conn, ticket_id)
    assert found is not None
    return found


async def recent_posts(conn: asyncpg.Connection, destination: str, since: datetime) -> int:
    """Messages of their own posted (or being posted) to `destination` since `since`."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM slack_messages WHERE destination = $1 AND posted_at > $2", destination, since)
    return count


async def claim_post(conn: asyncpg.Connection, ticket_id: int, destination: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE slack_messages SET destination = $2, posted_at = $3, posting_until = $4, summary_started_at = NULL,"
        " updated_at = $3 WHERE ticket_id = $1", ticket_id, destination, now, now + CLAIM)


async def posted(conn: asyncpg.Connection, ticket_id: int, channel_id: str, ts: str, *, alerting: bool,
                 now: datetime) -> None:
    await conn.execute(
        "UPDATE slack_messages SET channel_id = $2, ts = $3, posting_until = NULL, alerting = $4, updated_at = $5"
        " WHERE ticket_id = $1", ticket_id, channel_id, ts, alerting, now)


async def release_claim(conn: asyncpg.Connection, ticket_id: int) -> None:
    """The post failed: the claim goes, and the attempt no longer counts towards the burst limit."""
    await conn.execute("UPDATE slack_messages SET posting_until = NULL, posted_at = NULL"
                       " WHERE ticket_id = $1 AND ts IS NULL", ticket_id)


async def forget_post(conn: asyncpg.Connection, ticket_id: int, now: datetime) -> None:
    """The card's message is gone from Slack (someone deleted it): the next alert posts a new one."""
    await conn.execute("UPDATE slack_messages SET channel_id = NULL, ts = NULL, posted_at = NULL, posting_until = NULL,"
                       " alerting = false, updated_at = $2 WHERE ticket_id = $1", ticket_id, now)


async def set_alerting(conn: asyncpg.Connection, ticket_id: int, alerting: bool, now: datetime) -> None:
    await conn.execute("UPDATE slack_messages SET alerting = $2, updated_at = $3 WHERE ticket_id = $1",
                       ticket_id, alerting, now)


async def missed_while_snoozed(conn: asyncpg.Connection, ticket_id: int) -> None:
    await conn.execute("UPDATE slack_messages SET missed_while_snoozed = true WHERE ticket_id = $1", ticket_id)


async def add_activity(conn: asyncpg.Connection, ticket_id: int, destination: str, entry: dict[str, Any],
                       now: datetime, *, snoozed_until: datetime | None = None) -> None:
    """Record on the ticket's card what a person did from Slack (and a snooze, with `snoozed_until`).
    The last 10 entries are kept: a card stays readable."""
    await conn.execute(
        "INSERT INTO slack_messages (ticket_id, destination, activity, snoozed_until, updated_at)"
        " VALUES ($1, $2, jsonb_build_array($3::jsonb), $4, $5)"
        " ON CONFLICT (ticket_id) DO UPDATE SET updated_at = $5,"
        "  snoozed_until = COALESCE($4, slack_messages.snoozed_until),"
        "  activity = (SELECT COALESCE(jsonb_agg(x.value ORDER BY x.n), '[]') FROM jsonb_array_elements("
        "   slack_messages.activity || jsonb_build_array($3::jsonb)) WITH ORDINALITY AS x(value, n)"
        "   WHERE x.n > jsonb_array_length(slack_messages.activity) + 1 - 10)",
        ticket_id, destination, entry, snoozed_until, now)


# -- burst summaries -----------------------------------------------------------------------------

def _burst(row: asyncpg.Record) -> BurstRow:
    return BurstRow(**dict(row))


async def burst_for_update(conn: asyncpg.Connection, destination: str) -> BurstRow:
    """The destination's burst row, locked: it also serialises the burst-limit decision per destination."""
    await conn.execute("INSERT INTO slack_bursts (destination, started_at) VALUES ($1, 'epoch')"
                       " ON CONFLICT (destination) DO NOTHING", destination)
    row = await conn.fetchrow(f"SELECT {_BURST_COLUMNS} FROM slack_bursts WHERE destination = $1 FOR UPDATE",
                              destination)
    return _burst(row)


async def start_burst(conn: asyncpg.Connection, destination: str, ticket_id: int, now: datetime) -> None:
    """A new summary for `destination`, listing `ticket_id` first; the caller posts it (claimed)."""
    await conn.execute(
        "UPDATE slack_bursts SET started_at = $2, channel_id = NULL, ts = NULL, posting_until = $3, version = 1,"
        " rendered_version = 0 WHERE destination = $1", destination, now, now + CLAIM)
    await conn.execute("UPDATE slack_messages SET destination = $2, summary_started_at = $3, updated_at = $3"
                       " WHERE ticket_id = $1", ticket_id, destination, now)


async def join_burst(conn: asyncpg.Connection, burst: BurstRow, ticket_id: int, now: datetime) -> None:
    await conn.execute("UPDATE slack_bursts SET version = version + 1 WHERE destination = $1", burst.destination)
    await conn.execute("UPDATE slack_messages SET destination = $2, summary_started_at = $3, alerting = true,"
                       " updated_at = $4 WHERE ticket_id = $1", ticket_id, burst.destination, burst.started_at, now)


async def claim_burst(conn: asyncpg.Connection, destination: str, now: datetime) -> None:
    """Take over posting a summary whose poster stopped before recording it."""
    await conn.execute("UPDATE slack_bursts SET posting_until = $2 WHERE destination = $1", destination, now + CLAIM)


async def burst_members(conn: asyncpg.Connection, destination: str, started_at: datetime) -> list[int]:
    rows = await conn.fetch("SELECT ticket_id FROM slack_messages WHERE destination = $1 AND summary_started_at = $2"
                            " ORDER BY updated_at, ticket_id", destination, started_at)
    return [row["ticket_id"] for row in rows]


async def burst(conn: asyncpg.Connection, destination: str) -> BurstRow | None:
    row = await conn.fetchrow(f"SELECT {_BURST_COLUMNS} FROM slack_bursts WHERE destination = $1", destination)
    return _burst(row) if row else None


async def burst_rendered(conn: asyncpg.Connection, destination: str, started_at: datetime, version: int, *,
                         posted: tuple[str, str] | None = None) -> None:
    """Slack shows the summary at `version` now (and, just posted, at `posted` = channel ID, ts)."""
    await conn.execute(
        "UPDATE slack_bursts SET rendered_version = GREATEST(rendered_version, $3),"
        " channel_id = COALESCE($4, channel_id), ts = COALESCE($5, ts),"
        " posting_until = CASE WHEN $5::text IS NULL THEN posting_until END"
        " WHERE destination = $1 AND started_at = $2", destination, started_at, version,
        posted[0] if posted else None, posted[1] if posted else None)


async def release_burst(conn: asyncpg.Connection, destination: str, started_at: datetime) -> None:
    await conn.execute("UPDATE slack_bursts SET posting_until = NULL WHERE destination = $1 AND started_at = $2"
                       " AND ts IS NULL", destination, started_at)


# -- upkeep: resolutions, snoozes, old request signatures, digests -------------------------------

async def queue_resolutions(conn: asyncpg.Connection, now: datetime) -> int:
    """Cards still showing an alert whose ticket is answered, solved, or otherwise no longer at risk:
    queue their update (each resolution once, by key) and stop watching them."""
    rows = await conn.fetch(
        "UPDATE slack_messages m SET alerting = false, resolved_count = resolved_count + 1, updated_at = $1"
        " FROM tickets t WHERE m.alerting AND m.ts IS NOT NULL AND t.id = m.ticket_id AND ("
        "  t.status NOT IN ('open', 'pending') OR NOT EXISTS (SELECT 1 FROM sla_targets s"
        "   WHERE s.ticket_id = m.ticket_id AND s.met_at IS NULL AND (s.warn_at <= $1 OR EXISTS (SELECT 1"
        "    FROM sla_events e WHERE e.ticket_id = s.ticket_id AND e.target = s.target AND e.cycle = s.cycle))))"
        " RETURNING m.ticket_id, m.resolved_count", now)
    for row in rows:
        await outbox.enqueue(conn, key=f"slack-resolved:{row['ticket_id']}:{row['resolved_count']}",
                             kind="slack_update", channel="slack", payload={"reason": "resolved"}, now=now,
                             ticket_id=row["ticket_id"])
    return len(rows)


async def queue_snooze_ends(conn: asyncpg.Connection, now: datetime) -> int:
    """Snoozes that ended after swallowing an alert: the card catches up with what happened."""
    rows = await conn.fetch(
        "UPDATE slack_messages SET missed_while_snoozed = false WHERE missed_while_snoozed AND snoozed_until <= $1"
        " RETURNING ticket_id, snoozed_until", now)
    for row in rows:
        await outbox.enqueue(conn, key=f"slack-snooze-ended:{row['ticket_id']}:{row['snoozed_until'].isoformat()}",
                             kind="sla_alert", channel="slack", payload={"reason": "snooze ended"}, now=now,
                             ticket_id=row["ticket_id"])
    return len(rows)


async def queue_refresh(conn: asyncpg.Connection, ticket_id: int, key: str, now: datetime) -> None:
    """Show the ticket's card as it is now (after someone acted on it)."""
    await outbox.enqueue(conn, key=f"slack-refresh:{ticket_id}:{key}", kind="slack_update", channel="slack",
                         payload={"reason": "action"}, now=now, ticket_id=ticket_id)


async def first_time_seen(conn: asyncpg.Connection, signature: str, now: datetime) -> bool:
    """Remember a verified request's signature; False when it was served before (a replay)."""
    inserted = await conn.fetchval("INSERT INTO slack_requests_seen (signature, seen_at) VALUES ($1, $2)"
                                   " ON CONFLICT (signature) DO NOTHING RETURNING true", signature, now)
    return bool(inserted)


async def forget_requests(conn: asyncpg.Connection, before: datetime) -> None:
    """Signatures older than the replay window: their timestamps are refused anyway."""
    await conn.execute("DELETE FROM slack_requests_seen WHERE seen_at < $1", before)


async def claim_digest(conn: asyncpg.Connection, team: str, day: Any, now: datetime) -> bool:
    """True once per team and local date, whichever process asks first."""
    inserted = await conn.fetchval("INSERT INTO slack_digests (team, day, queued_at) VALUES ($1, $2, $3)"
                                   " ON CONFLICT DO NOTHING RETURNING true", team, day, now)
    return bool(inserted)


@dataclass(frozen=True)
class DigestCounts:
    breaches: int
    met_in_time: int
    ended: int
    queued: int
    oldest_waiting_number: int | None
    oldest_waiting_since: datetime | None
    online: tuple[AgentOnline, ...]


async def digest_counts(conn: asyncpg.Connection, team: str, start: datetime, end: datetime) -> DigestCounts:
    """Yesterday (`start`..`end`) and now, for tickets of `team` or of no team: breaches recorded,
    targets met in time among those that ended (met, or breached and still running), the team queue
    and its oldest ticket, and the team's agents online."""
    row = await conn.fetchrow(
        "WITH team AS (SELECT id FROM teams WHERE name = $1),"
        " mine AS (SELECT t.id FROM tickets t LEFT JOIN agents a ON a.id = t.assignee_id"
        f"  WHERE {_TEAM_OF} IS NULL OR {_TEAM_OF} = (SELECT id FROM team))"
        " SELECT"
        " (SELECT count(*) FROM sla_events e WHERE e.kind = 'breach' AND e.created_at >= $2 AND e.created_at < $3"
        "  AND e.ticket_id IN (SELECT id FROM mine)) AS breaches,"
        " (SELECT count(*) FILTER (WHERE s.met_at <= s.due_at) FROM sla_targets s WHERE s.ticket_id IN"
        "  (SELECT id FROM mine) AND ((s.met_at >= $2 AND s.met_at < $3)"
        "  OR (s.met_at IS NULL AND s.breached_at >= $2 AND s.breached_at < $3))) AS met_in_time,"
        " (SELECT count(*) FROM sla_targets s WHERE s.ticket_id IN (SELECT id FROM mine)"
        "  AND ((s.met_at >= $2 AND s.met_at < $3) OR (s.met_at IS NULL AND s.breached_at >= $2"
        "  AND s.breached_at < $3))) AS ended",
        team, start, end)
    queue = await conn.fetchrow(
        "SELECT count(*) AS queued, min(created_at) AS oldest_at,"
        " (array_agg(number ORDER BY created_at, id))[1] AS oldest_number FROM tickets"
        " WHERE assignee_id IS NULL AND status IN ('open', 'pending')"
        " AND (team_id IS NULL OR team_id = (SELECT id FROM teams WHERE name = $1))", team)
    online = await conn.fetch(
        "SELECT a.name, a.load, a.capacity FROM agents a JOIN teams t ON t.id = a.team_id"
        " WHERE t.name = $1 AND a.status = 'online' AND a.active AND a.role <> 'lead' ORDER BY a.name", team)
    return DigestCounts(
        breaches=row["breaches"], met_in_time=row["met_in_time"], ended=row["ended"], queued=queue["queued"],
        oldest_waiting_number=queue["oldest_number"], oldest_waiting_since=queue["oldest_at"],
        online=tuple(AgentOnline(r["name"], r["load"], r["capacity"]) for r in online))


# -- Slack people ------------------------------------------------------------------------------

async def cached_user_id(conn: asyncpg.Connection, email: str, now: datetime) -> tuple[bool, str | None]:
    """(known, Slack user id) for `email` from the cache: known False means ask Slack."""
    row = await conn.fetchrow("SELECT user_id, checked_at FROM slack_people WHERE email = $1", email.lower())
    if row is None:
        return False, None
    fresh = PERSON_FRESH if row["user_id"] else NO_PERSON_FRESH
    return row["checked_at"] > now - fresh, row["user_id"]


async def cached_email(conn: asyncpg.Connection, user_id: str, now: datetime) -> str | None:
    email: str | None = await conn.fetchval(
        "SELECT email FROM slack_people WHERE user_id = $1 AND checked_at > $2", user_id, now - PERSON_FRESH)
    return email


async def remember_person(conn: asyncpg.Connection, email: str, user_id: str | None, now: datetime) -> None:
    """What Slack said about `email` (None: nobody); a user id moves with its user's new email."""
    async with conn.transaction():
        if user_id is not None:
            await conn.execute("DELETE FROM slack_people WHERE user_id = $1 AND email <> $2", user_id, email.lower())
        await conn.execute(
            "INSERT INTO slack_people (email, user_id, checked_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (email) DO UPDATE SET user_id = EXCLUDED.user_id, checked_at = EXCLUDED.checked_at",
            email.lower(), user_id, now)


# -- agents as Slack sees them -------------------------------------------------------------------

@dataclass(frozen=True)
class AgentCard:
    id: int
    email: str
    name: str
    role: str
    team: str | None
    skills: frozenset[str]
    languages: frozenset[str]
    status: str
    load: int
    capacity: int


_AGENT_CARD = ("SELECT a.id, a.email, a.name, a.role, t.name AS team, a.skills, a.languages, a.status, a.load,"
               " a.capacity FROM agents a LEFT JOIN teams t ON t.id = a.team_id")


def _agent_card(row: asyncpg.Record) -> AgentCard:
    return AgentCard(id=row["id"], email=row["email"], name=row["name"], role=row["role"], team=row["team"],
                     skills=frozenset(row["skills"]), languages=frozenset(row["languages"]), status=row["status"],
                     load=row["load"], capacity=row["capacity"])


async def active_agent(conn: asyncpg.Connection, email: str) -> AgentCard | None:
    """The active agent with this email: who a Slack user is here."""
    row = await conn.fetchrow(_AGENT_CARD + " WHERE a.email = $1 AND a.active", email.strip().lower())
    return _agent_card(row) if row else None


async def agent_by_id(conn: asyncpg.Connection, agent_id: int) -> AgentCard | None:
    row = await conn.fetchrow(_AGENT_CARD + " WHERE a.id = $1 AND a.active", agent_id)
    return _agent_card(row) if row else None


async def agents_for(conn: asyncpg.Connection, skill: str | None, language: str | None) -> list[AgentCard]:
    """Active agents who take routed work and have the skill and language (None: any): who a ticket
    may be handed to. Online first, then the least loaded."""
    rows = await conn.fetch(
        _AGENT_CARD + " WHERE a.active AND a.role <> 'lead' AND ($1::text IS NULL OR $1 = ANY(a.skills))"
        " AND ($2::text IS NULL OR $2 = ANY(a.languages))"
        " ORDER BY a.status <> 'online', a.load::float / GREATEST(a.capacity, 1), a.name", skill, language)
    return [_agent_card(row) for row in rows]
