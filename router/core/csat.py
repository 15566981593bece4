"""Customer feedback (SPEC §2.13): a survey once a ticket has stayed solved, and what an answer sets off.

- Who is surveyed: a ticket solved `[csat] delay` ago and still solved (or since closed), once per
  ticket. Not when the customer never wrote anything but automated mail (auto-replies, bounces), when
  the ticket was merged into another, when no agent ever replied (spam, duplicates), when the customer
  was sent any survey in the last `quiet_days`, or when they cannot be reached (no address; a 24-hour
  platform window closed and no email to fall back to). Each decision is stored, so a ticket is looked
  at once, by one process, however many run (`store.csat.claim`, a row lock with SKIP LOCKED, and the
  decision's primary key). Tickets solved longer ago than `CATCH_UP` past the delay (a worker stopped
  for days, a database from before surveys existed) are not surveyed: a late survey is worse than none.
- NPS (`[csat] nps = true`): when the customer has had no NPS for `nps_every_days`, that resolution's
  survey asks the NPS question (0-10) instead of CSAT (1-5): one question per message, never two surveys.
- The survey goes through the outbox on the customer's channel, in their language: by email five
  one-click links (plain text and HTML), elsewhere a short message with the link to the survey page.
- Links carry a token signed with `ROUTER_SECRET_KEY` naming one survey, its language and its expiry
  (`link_expiry`); a forged, altered or expired token records nothing.
- An answer sets the score (a second click changes it, never adds one); a low CSAT (1-2) is a
  `csat.low` event on the ticket and, with Slack configured, a message to the team's channel.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
from itsdangerous import BadData, URLSafeSerializer

from router.config import Config
from router.core.actions import replies
from router.core.clock import Clock
from router.core.errors import InvalidInput
from router.core.outbound import queue_outbound
from router.core.refs import ref
from router.core.store import csat as store
from router.core.store import events, outbox, tickets
from router.core.store.csat import Candidate, Outcome, Survey, SurveyKind

BATCH = 50
IDLE_SECONDS = 15.0
CATCH_UP = timedelta(days=2)
SCALES: dict[SurveyKind, range] = {"csat": range(1, 6), "nps": range(0, 11)}
LOW_SCORES = range(1, 3)
MAX_COMMENT_CHARS = 2000
_SALT = "csat-survey"


# --- links ---------------------------------------------------------------------------------------------


class BadLink(Exception):
    """A survey link that records nothing: `reason` "invalid" (forged, altered, unknown) or "expired"."""

    def __init__(self, reason: str, language: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.language = language


@dataclass(frozen=True)
class Link:
    """What a valid token says: which survey, in which language, until when."""

    response_id: int
    language: str
    expires_at: datetime


def make_token(secret: str, response_id: int, language: str, expires_at: datetime) -> str:
    return str(URLSafeSerializer(secret, salt=_SALT).dumps([response_id, language, int(expires_at.timestamp())]))


def read_token(secret: str, token: str, now: datetime) -> Link:
    """The link's survey, or `BadLink`. The signature covers the survey id, language and expiry, so none
    can be changed; the expiry is checked against `now` (the service's clock)."""
    try:
        value = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except (BadData, UnicodeError, ValueError):
        raise BadLink("invalid") from None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                  for v in (value[0], value[2]))
            and value[1] in ("ja", "en")):
        raise BadLink("invalid")
    link = Link(value[0], value[1], datetime.fromtimestamp(value[2], UTC))
    if now >= link.expires_at:
        raise BadLink("expired", link.language)
    return link


def survey_url(config: Config, token: str, score: int | None = None) -> str:
    base = f"{config.settings.public_url}/csat/{token}"
    return base if score is None else f"{base}?score={score}"


# --- what the customer reads ---------------------------------------------------------------------------

CHOICES = {
    "en": {5: "Very satisfied", 4: "Satisfied", 3: "Neither", 2: "Dissatisfied", 1: "Very dissatisfied"},
    "ja": {5: "とても満足", 4: "満足", 3: "どちらでもない", 2: "不満", 1: "とても不満"},
}
"""The CSAT answers, best first (the order the mail and the page list them)."""

_TEXTS = {
    "en": {
        "subject_csat": "[{ref}] How did we do?",
        "subject_nps": "[{ref}] Would you recommend us?",
        "question_csat": "Your request {ref} has been solved. How satisfied are you with the support you received?",
        "question_nps": "How likely are you to recommend us to a friend or colleague?",
        "scale_nps": "0 = not at all likely, 10 = extremely likely",
        "one_click": "One click records your answer; you can add a comment on the page that opens.",
        "expires": "These links work until {date}. Need more help? Just reply to this message.",
        "short_csat": "How did we do with {ref}? Tell us in one tap: {url}",
        "short_nps": "How likely are you to recommend us (0-10)? Tell us in one tap: {url}",
    },
    "ja": {
        "subject_csat": "[{ref}] サポートの対応はいかがでしたか？",
        "subject_nps": "[{ref}] 知人へのおすすめについてお聞かせください",
        "question_csat": "お問い合わせ（{ref}）は解決済みとなりました。今回のサポートにどの程度満足されましたか？",
        "question_nps": "当社を友人や同僚にすすめる可能性はどのくらいありますか？",
        "scale_nps": "0 = まったくない、10 = 非常に高い",
        "one_click": "リンクをクリックするだけで回答が記録されます。開いたページでコメントも送れます。",
        "expires": "リンクの有効期限は{date}です。さらにお手伝いが必要な場合は、このメッセージにご返信ください。",
        "short_csat": "{ref}の対応はいかがでしたか？ワンタップでご回答ください: {url}",
        "short_nps": "当社を友人や同僚にすすめる可能性（0〜10）をワンタップでお聞かせください: {url}",
    },
}


def survey_language(customer_language: str | None, ticket_language: str | None) -> str:
    language = customer_language or ticket_language
    return language if language in _TEXTS else "en"


def text(language: str, key: str, **values: object) -> str:
    return _TEXTS[language][key].format(**values)


def _date(moment: datetime, language: str) -> str:
    return f"{moment.year}年{moment.month}月{moment.day}日" if language == "ja" else f"{moment:%d %b %Y}"


def _options(kind: SurveyKind, language: str) -> list[tuple[int, str]]:
    if kind == "csat":
        return [(score, f"{score} - {label}" if language == "en" else f"{score}：{label}")
                for score, label in CHOICES[language].items()]
    return [(score, str(score)) for score in reversed(SCALES["nps"])]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None  # email only


def render_survey(kind: SurveyKind, language: str, ticket_ref: str, channel: str, url: Callable[[int | None], str],
                  expires_at: datetime) -> Rendered:
    """The survey as the customer receives it on `channel`: by email the question with one link per
    answer (plain text, and the same as simple HTML), elsewhere one short line with the page's link."""
    subject = text(language, f"subject_{kind}", ref=ticket_ref)
    if channel != "email":
        return Rendered(subject, text(language, f"short_{kind}", ref=ticket_ref, url=url(None)), None)
    question = text(language, f"question_{kind}", ref=ticket_ref)
    scale = [text(language, "scale_nps")] if kind == "nps" else []
    options = _options(kind, language)
    footer = [text(language, "one_click"), text(language, "expires", date=_date(expires_at, language))]
    plain = "\n".join([question, *scale, "", *(f"{label}: {url(score)}" for score, label in options), "",
                       *footer])
    items = "".join(f'<li><a href="{html.escape(url(score))}">{html.escape(label)}</a></li>'
                    for score, label in options)
    body = (f'<!DOCTYPE html><html lang="{language}"><body><p>{html.escape(question)}</p>'
            + "".join(f"<p>{html.escape(line)}</p>" for line in scale)
            + f"<ul>{items}</ul>" + "".join(f"<p>{html.escape(line)}</p>" for line in footer) + "</body></html>")
    return Rendered(subject, plain, body)


# --- the scheduler -------------------------------------------------------------------------------------


class Scheduler:
    """The worker step: decide about every ticket that has stayed solved for the delay. Safe in several
    processes at once (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, config: Callable[[], Config]):
        self.pool = pool
        self.clock = clock
        self.config = config

    async def run_once(self) -> int:
        """Decide about the tickets due now; returns how many were decided (0: rest a while)."""
        config, now = self.config(), self.clock()
        if not config.csat.enabled:
            return 0
        due_before = now - config.csat.delay
        async with self.pool.acquire() as conn:
            due = await store.due_tickets(conn, due_before, due_before - CATCH_UP, BATCH)
        decided = 0
        for ticket_id in due:
            async with self.pool.acquire() as conn, conn.transaction():
                candidate = await store.claim(conn, ticket_id, due_before)
                if candidate is None:
                    continue
                outcome = await _outcome(conn, config, candidate, now)
                await store.decide(conn, ticket_id, outcome, now)
                decided += 1
        return decided


async def _outcome(conn: asyncpg.Connection, config: Config, candidate: Candidate, now: datetime) -> Outcome:
    """What to do about a claimed ticket; a survey is queued here when one is due."""
    ticket = candidate.ticket
    if candidate.merged_away:
        return "merged"
    if not candidate.customer_wrote:
        return "automated"
    if ticket.last_agent_reply_at is None:
        return "no_reply"
    await store.lock_customer(conn, ticket.customer_id)
    settings = config.csat
    last = await store.last_sent(conn, ticket.customer_id, ("csat", "nps"))
    if settings.quiet_days and last is not None and now - last < timedelta(days=settings.quiet_days):
        return "quiet"
    kind: SurveyKind = "csat"
    if settings.nps:
        last_nps = await store.last_sent(conn, ticket.customer_id, ("nps",))
        if last_nps is None or now - last_nps >= timedelta(days=settings.nps_every_days):
            kind = "nps"
    target = await _destination(conn, ticket, now)
    if target is None:
        return "unreachable"
    await _queue_survey(conn, config, candidate, kind, target, now)
    return kind


async def _destination(conn: asyncpg.Connection, ticket: tickets.Ticket, now: datetime) -> replies.Destination | None:
    """Where an agent's reply would go now; else email (a platform's 24-hour window has closed); else None."""
    for channel in (None, "email"):
        try:
            return await replies.destination(conn, ticket, channel, now)
        except InvalidInput:
            continue
    return None


async def _queue_survey(conn: asyncpg.Connection, config: Config, candidate: Candidate, kind: SurveyKind,
                        target: replies.Destination, now: datetime) -> None:
    ticket = candidate.ticket
    language = survey_language(candidate.customer_language, ticket.language)
    response_id = await store.create_survey(conn, kind=kind, ticket_id=ticket.id, customer_id=ticket.customer_id,
                                            agent_id=ticket.assignee_id if kind == "csat" else None, now=now)
    expires_at = now + config.csat.link_expiry
    token = make_token(config.settings.secret_key, response_id, language, expires_at)
    rendered = render_survey(kind, language, ticket.ref, target.channel,
                             lambda score: survey_url(config, token, score), expires_at)
    # Automated mail: an out-of-office answer to the survey must not reopen the ticket.
    extra: dict[str, object] = {"ticket_ref": ticket.ref, "language": language, "auto_submitted": True,
                                **target.context}
    if target.channel == "email":
        thread = await tickets.email_thread(conn, ticket.id)
        theirs = [external_id for external_id, direction in thread if direction == "in"]
        extra.update(html=rendered.html, in_reply_to=theirs[-1] if theirs else None,
                     references=[external_id for external_id, _ in thread][-20:])
    await queue_outbound(
        conn, key=f"survey:{ticket.id}", kind=kind, channel=target.channel, ticket_id=ticket.id,
        customer_id=ticket.customer_id, to=target.address, subject=rendered.subject, text=rendered.text, now=now,
        mail_domain=config.service.support_address.partition("@")[2], secret=config.settings.secret_key,
        extra=extra)


# --- answers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """A survey after an answer: `changed` False when it already had this score (a repeated click)."""

    survey: Survey
    link: Link
    changed: bool


def parse_score(kind: SurveyKind, value: str | None) -> int | None:
    """The score a link or form sends, when it is one of the survey's answers."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 2:
        return None
    score = int(value)
    return score if score in SCALES[kind] else None


async def open_survey(pool: asyncpg.Pool, config: Config, token: str, now: datetime) -> tuple[Survey, Link]:
    """The survey a link names, for showing its question; `BadLink` when it records nothing."""
    link = read_token(config.settings.secret_key, token, now)
    async with pool.acquire() as conn:
        survey = await store.survey(conn, link.response_id)
    if survey is None:
        raise BadLink("invalid", link.language)
    return survey, link


async def answer(pool: asyncpg.Pool, config: Config, clock: Clock, token: str, score_text: str | None) -> Answered:
    """Record the score a link sends. A second answer replaces the first. `InvalidInput` when the score
    is not one of the survey's answers; `BadLink` when the link records nothing."""
    now = clock()
    link = read_token(config.settings.secret_key, token, now)
    async with pool.acquire() as conn, conn.transaction():
        survey = await store.survey(conn, link.response_id, lock=True)
        if survey is None:
            raise BadLink("invalid", link.language)
        score = parse_score(survey.kind, score_text)
        if score is None:
            raise InvalidInput(f"choose a score from {SCALES[survey.kind][0]} to {SCALES[survey.kind][-1]}")
        if score == survey.score:
            return Answered(survey, link, changed=False)
        await store.record_score(conn, survey.id, score, now)
        payload = {"survey": survey.id, "kind": survey.kind, "score": score, "previous": survey.score}
        await events.record(conn, survey.ticket_id, f"{survey.kind}.answered", payload, now)
        was_low = survey.score is not None and survey.score in LOW_SCORES
        if survey.kind == "csat" and score in LOW_SCORES and not was_low:
            await events.record(conn, survey.ticket_id, "csat.low", payload, now)
            await _tell_the_team(conn, config, survey, score, now)
        answered = replace(survey, score=score, answered_at=now)
    return Answered(answered, link, changed=True)


async def add_comment(pool: asyncpg.Pool, config: Config, clock: Clock, token: str, comment: str) -> Survey:
    """Keep the customer's comment (it replaces an earlier one). `InvalidInput` when empty or too long."""
    now = clock()
    link = read_token(config.settings.secret_key, token, now)
    comment = comment.strip()
    if not comment:
        raise InvalidInput("the comment is empty")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    async with pool.acquire() as conn, conn.transaction():
        survey = await store.survey(conn, link.response_id, lock=True)
        if survey is None:
            raise BadLink("invalid", link.language)
        if comment != survey.comment:
            await store.record_comment(conn, survey.id, comment)
            await events.record(conn, survey.ticket_id, f"{survey.kind}.comment",
                                {"survey": survey.id, "kind": survey.kind, "score": survey.score}, now)
    return replace(survey, comment=comment)


async def _tell_the_team(conn: asyncpg.Connection, config: Config, survey: Survey, score: int, now: datetime) -> None:
    """With Slack configured, a message to the ticket's team channel (else `SLACK_ALERT_CHANNEL`),
    queued once per survey through the outbox like every alert."""
    destination = config.slack_channel(survey.team) if config.slack_enabled else None
    if destination is None or survey.ticket_number is None:
        return
    ticket_ref = ref(survey.ticket_number)
    url = f"{config.settings.public_url}/inbox/{ticket_ref}"
    who = survey.customer_name or "A customer"
    await outbox.enqueue(conn, key=f"csat-low:{survey.id}", kind="csat_low", channel="slack", now=now,
                         ticket_id=survey.ticket_id, payload={
                             "channel": destination, "ref": ticket_ref, "score": score, "url": url, "customer": who})
