"""SLA alerts in the leads' chat (Slack): the outbox sender for channel "slack", and the upkeep that
keeps cards true and posts the daily digests.

One card per ticket. An alert item (`sla_alert`, queued by the SLA monitor) or a refresh
(`slack_update`, after an action or a resolution) never carries the card's content: the card is
composed from the ticket as it is at delivery (`sla.alerts`), then posted once and updated in place
(`chat.update`, with the channel ID and ts stored on `slack_messages`). So late, repeated or
reordered items still show the truth, and warning → later warning → breach → resolved is one message.

- Bursts: when a destination has had `burst_limit` messages of their own in the last minute, further
  alerts join one summary message (updated as tickets join) linking to the inbox's At risk view.
- Snoozed tickets: alerts are swallowed until the snooze ends; then the card catches up.
- Failures: a `ChatError` from the port becomes the outbox's outcome — `Retry-After` waits
  (`RetryLater`), permanent refusals go dead with Slack's reason (`Refused`), the rest back off.
  Nothing here runs inside the ingest, routing or monitor transactions, so a slow or absent Slack
  only delays this delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from router.config import Config
from router.core.chat import ChatError, ChatPort, LowScore
from router.core.clock import Clock
from router.core.delivery import OutboxItem, Refused, RetryLater
from router.core.refs import ref
from router.core.store import outbox, slack_alerts
from router.core.store.slack_alerts import BURST_WINDOW, MessageRow
from sla.alerts import (
    Activity,
    AgentOnline,
    AlertedClock,
    BurstSummary,
    CardState,
    Digest,
    SummaryLine,
    TicketCard,
    TicketFacts,
    card_state,
    compose_card,
    span,
    summary_line,
)

log = logging.getLogger(__name__)

BUSY_RETRY = timedelta(seconds=3)
"""Another process is posting this ticket's card right now: update it once that post is recorded."""
REPLAY_MEMORY = timedelta(minutes=10)
"""Request signatures are kept this long: longer than the 5-minute window either side of a timestamp."""
SUMMARY_RENDERS = 3
DIGEST_AT_RISK = 200


def at_risk_url(config: Config) -> str:
    return f"{config.settings.public_url}/inbox?view=at_risk"


def fractions(config: Config) -> slack_alerts.Fraction:
    """(policy, level) → the level's fraction of the budget under the current config."""
    def fraction(policy_name: str, level: int) -> float | None:
        policy = config.sla.named(policy_name)
        return policy.warn_at[level - 1] if policy is not None and 0 < level <= len(policy.warn_at) else None

    return fraction


async def facts(conn: asyncpg.Connection, config: Config, ticket_ids: list[int], now: datetime, *,
                every_clock: bool = False) -> dict[int, tuple[TicketFacts, list[AlertedClock]]]:
    return await slack_alerts.facts_for(conn, ticket_ids, url_base=config.settings.public_url, now=now,
                                        fraction=fractions(config), every_clock=every_clock)


@dataclass(frozen=True)
class _Plan:
    action: Literal["skip", "busy", "post", "update", "summary"]
    row: MessageRow | None = None
    burst_started_at: datetime | None = None
    summary_poster: bool = False


_SKIP = _Plan("skip")


class AlertDelivery:
    """The outbox's sender for channel "slack"."""

    def __init__(self, pool: asyncpg.Pool, port: ChatPort, clock: Clock, config: Callable[[], Config]):
        self.pool = pool
        self.port = port
        self.clock = clock
        self.config = config

    async def send(self, item: OutboxItem) -> None:
        try:
            if item.kind == "slack_digest":
                await self.port.post(item.payload["channel"], digest_from_payload(item.payload))
            elif item.kind == "csat_low":
                payload = item.payload
                await self.port.post(payload["channel"], LowScore(payload["ref"], payload["score"], payload["customer"],
                                                                  payload["url"]))
            elif item.ticket_id is not None:
                await self._deliver_card(item.ticket_id, alert=item.kind == "sla_alert")
        except ChatError as exc:
            if exc.retry_after is not None:
                raise RetryLater(timedelta(seconds=exc.retry_after), str(exc)) from exc
            if exc.permanent:
                raise Refused(exc.code, exc.detail) from exc
            raise

    async def _deliver_card(self, ticket_id: int, *, alert: bool, first_try: bool = True) -> None:
        now, config = self.clock(), self.config()
        async with self.pool.acquire() as conn:
            ticket, clocks = (await facts(conn, config, [ticket_id], now))[ticket_id]
        state = card_state(ticket, clocks)
        destination = config.slack_channel(ticket.team)
        if destination is None:
            raise Refused("no_channel", f"no Slack channel for {ticket.ref}: set SLACK_ALERT_CHANNEL or the"
                                        f" slack_channel of team {ticket.team!r}")
        async with self.pool.acquire() as conn, conn.transaction():
            plan = await self._plan(conn, ticket_id, alert, state, destination, now, config.slack.burst_limit)
        if plan.action == "skip":
            return
        if plan.action == "busy":
            raise RetryLater(BUSY_RETRY, f"another process is posting the card of {ticket.ref}")
        if plan.action == "summary":
            assert plan.burst_started_at is not None
            await self._deliver_summary(destination, plan.burst_started_at, plan.summary_poster)
            return
        assert plan.row is not None
        timezone = config.team_timezone(ticket.team)
        chat_id = await self.chat_user(ticket.assignee_email, now) if ticket.assignee_email else None
        activity = [Activity(e["who"], e["what"], datetime.fromisoformat(e["at"])).text(timezone, now)
                    for e in plan.row.activity]
        card = compose_card(ticket, clocks, timezone=timezone, now=now, assignee_chat_id=chat_id, activity=activity,
                            snoozed_until=plan.row.snoozed_until)
        if plan.action == "update":
            assert plan.row.channel_id is not None and plan.row.ts is not None
            shown = await self._update(ticket_id, plan.row.channel_id, plan.row.ts, card, state, now)
            if not shown and alert and first_try:  # someone deleted the card: an alert posts a new one
                await self._deliver_card(ticket_id, alert=True, first_try=False)
            return
        try:
            channel_id, ts = await self.port.post(destination, card)
        except Exception:
            async with self.pool.acquire() as conn:
                await slack_alerts.release_claim(conn, ticket_id)
            raise
        async with self.pool.acquire() as conn:
            await slack_alerts.posted(conn, ticket_id, channel_id, ts, alerting=state != "resolved", now=now)

    async def _update(self, ticket_id: int, channel_id: str, ts: str, card: TicketCard, state: CardState,
                      now: datetime) -> bool:
        """Update the card in place; False when its message is gone from Slack (deleted by someone)."""
        try:
            await self.port.update(channel_id, ts, card)
        except ChatError as exc:
            if exc.code != "message_not_found":
                raise
            async with self.pool.acquire() as conn:
                await slack_alerts.forget_post(conn, ticket_id, now)
            return False
        async with self.pool.acquire() as conn:
            await slack_alerts.set_alerting(conn, ticket_id, state != "resolved", now)
        return True

    async def _plan(self, conn: asyncpg.Connection, ticket_id: int, alert: bool, state: CardState,
                    destination: str, now: datetime, burst_limit: int) -> _Plan:
        """Under the card's row lock (then its destination's burst row): post, update, list in a
        summary, wait for another process's post, or nothing (stale alert, snoozed)."""
        row = await slack_alerts.message_for_update(conn, ticket_id)
        if row is None:
            if not alert or state == "resolved":
                return _SKIP  # nothing was ever posted, and there is nothing to say now
            row = await slack_alerts.create_message(conn, ticket_id, destination, now)
        if alert and row.snoozed_until is not None and row.snoozed_until > now:
            await slack_alerts.missed_while_snoozed(conn, ticket_id)
            return _SKIP
        if row.ts is not None:
            return _Plan("update", row)
        if row.posting_until is not None and row.posting_until > now:
            return _Plan("busy")
        burst = await slack_alerts.burst_for_update(conn, destination)
        live = burst.started_at > now - BURST_WINDOW
        listed = live and row.summary_started_at == burst.started_at
        if not listed and (not alert or state == "resolved"):
            return _SKIP
        if not listed and await slack_alerts.recent_posts(conn, destination, now - BURST_WINDOW) < burst_limit:
            await slack_alerts.claim_post(conn, ticket_id, destination, now)
            return _Plan("post", row)
        if not live:
            await slack_alerts.start_burst(conn, destination, ticket_id, now)
            return _Plan("summary", burst_started_at=now, summary_poster=True)
        await slack_alerts.join_burst(conn, burst, ticket_id, now)
        poster = burst.ts is None and (burst.posting_until is None or burst.posting_until <= now)
        if poster:  # its poster stopped before recording the post: take over
            await slack_alerts.claim_burst(conn, destination, now)
        return _Plan("summary", burst_started_at=burst.started_at, summary_poster=poster)

    async def _deliver_summary(self, destination: str, started_at: datetime, poster: bool) -> None:
        """Post or update the burst summary until Slack shows every ticket that joined it (another
        process may add one while this one renders)."""
        config = self.config()
        for _ in range(SUMMARY_RENDERS):
            now = self.clock()
            async with self.pool.acquire() as conn:
                burst = await slack_alerts.burst(conn, destination)
                if burst is None or burst.started_at != started_at or burst.rendered_version >= burst.version:
                    return
                if burst.ts is None and not poster:
                    return  # its poster renders the latest version once its post is recorded
                members = await slack_alerts.burst_members(conn, destination, started_at)
                found = await facts(conn, config, members, now)
            content = BurstSummary(tuple(summary_line(*found[m], now=now) for m in members if m in found),
                                   at_risk_url(config))
            if burst.ts is None or burst.channel_id is None:
                try:
                    posted = await self.port.post(destination, content)
                except Exception:
                    async with self.pool.acquire() as conn:
                        await slack_alerts.release_burst(conn, destination, started_at)
                    raise
                async with self.pool.acquire() as conn:
                    await slack_alerts.burst_rendered(conn, destination, started_at, burst.version, posted=posted)
                poster = False
            else:
                await self.port.update(burst.channel_id, burst.ts, content)
                async with self.pool.acquire() as conn:
                    await slack_alerts.burst_rendered(conn, destination, started_at, burst.version)

    async def chat_user(self, email: str, now: datetime) -> str | None:
        """The Slack user with this email (to mention them), cached; None when there is none or
        Slack cannot say right now (the card then names them)."""
        async with self.pool.acquire() as conn:
            known, user_id = await slack_alerts.cached_user_id(conn, email, now)
        if known:
            return user_id
        try:
            user_id = await self.port.user_by_email(email)
        except ChatError as exc:
            log.info("Slack user lookup for an assignee failed (%s); naming them instead", exc.code)
            return None
        async with self.pool.acquire() as conn:
            await slack_alerts.remember_person(conn, email, user_id, now)
        return user_id


@dataclass
class Upkeep:
    """Periodic work that keeps cards true and posts digests, safe to run in every process: resolved
    tickets and ended snoozes are claimed row by row, digests once per team and local date."""

    pool: asyncpg.Pool
    clock: Clock
    config: Callable[[], Config]
    digests_done: set[tuple[str, date]] = field(default_factory=set)

    async def run_once(self) -> int:
        now, config = self.clock(), self.config()
        async with self.pool.acquire() as conn, conn.transaction():
            queued = await slack_alerts.queue_resolutions(conn, now)
            queued += await slack_alerts.queue_snooze_ends(conn, now)
            await slack_alerts.forget_requests(conn, now - REPLAY_MEMORY)
        return queued + await self.queue_digests(config, now)

    async def queue_digests(self, config: Config, now: datetime) -> int:
        """Each team's digest, once its local digest time has passed today."""
        if config.slack.digest_time is None:
            return 0
        queued = 0
        for team in config.teams:
            destination = config.slack_channel(team.name)
            zone = ZoneInfo(config.team_timezone(team.name))
            today = now.astimezone(zone).date()
            if destination is None or (team.name, today) in self.digests_done:
                continue
            if now.astimezone(zone).time() < config.slack.digest_time:
                continue
            async with self.pool.acquire() as conn, conn.transaction():
                if await slack_alerts.claim_digest(conn, team.name, today, now):
                    digest = await compose_digest(conn, config, team.name, today, zone, now)
                    await outbox.enqueue(conn, key=f"slack-digest:{team.name}:{today.isoformat()}",
                                         kind="slack_digest", channel="slack",
                                         payload={"channel": destination, **digest_payload(digest)}, now=now)
                    queued += 1
            self.digests_done = {done for done in self.digests_done if done[1] >= today} | {(team.name, today)}
        return queued


async def compose_digest(conn: asyncpg.Connection, config: Config, team: str, today: date, zone: ZoneInfo,
                         now: datetime) -> Digest:
    start = datetime.combine(today - timedelta(days=1), time(0), zone)
    counts = await slack_alerts.digest_counts(conn, team, start, start + timedelta(days=1))
    at_risk_ids = await slack_alerts.at_risk(conn, team, now, DIGEST_AT_RISK)
    found = await facts(conn, config, at_risk_ids, now)
    return Digest(
        team=team, day=today, breaches_yesterday=counts.breaches, met_yesterday=counts.met_in_time,
        due_yesterday=counts.ended,
        at_risk=tuple(summary_line(*found[i], now=now) for i in at_risk_ids if i in found),
        queued=counts.queued,
        oldest_waiting_ref=ref(counts.oldest_waiting_number) if counts.oldest_waiting_number else None,
        oldest_waiting_since=span(now - counts.oldest_waiting_since) if counts.oldest_waiting_since else None,
        agents_online=counts.online, at_risk_url=at_risk_url(config))


def digest_payload(digest: Digest) -> dict[str, Any]:
    """The digest as composed at queue time, as JSON for the outbox item."""
    payload = asdict(digest)
    payload["day"] = digest.day.isoformat()
    return payload


def digest_from_payload(payload: dict[str, Any]) -> Digest:
    return Digest(
        team=payload["team"], day=date.fromisoformat(payload["day"]),
        breaches_yesterday=payload["breaches_yesterday"], met_yesterday=payload["met_yesterday"],
        due_yesterday=payload["due_yesterday"],
        at_risk=tuple(SummaryLine(**line) for line in payload["at_risk"]), queued=payload["queued"],
        oldest_waiting_ref=payload["oldest_waiting_ref"], oldest_waiting_since=payload["oldest_waiting_since"],
        agents_online=tuple(AgentOnline(**agent) for agent in payload["agents_online"]),
        at_risk_url=payload["at_risk_url"])
