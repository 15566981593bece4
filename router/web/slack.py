"""Slack's calls to us: `POST /slack/actions` (buttons on alert cards, the Reassign… dialog) and
`POST /slack/commands` (`/sla`, `/sla T-1042`).

Every request is verified before anything in it is read: Slack's v0 signature over the raw body,
compared in constant time, a timestamp within 5 minutes, and a signature never served before (a
replay gets 401 and changes nothing). The Slack user is then matched to an active agent by email
(Slack's `users.info`, cached), and the work goes through the same actions as the inbox, with the
same permissions.

Slack wants an answer within 3 seconds. The work runs at once; if it is not done within
`ANSWER_WITHIN`, Slack gets an interim answer and the result follows through the interaction's
`response_url` (or, for the dialog, an ephemeral message).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.store import AgentIdentity
from channels.slack import blocks, payloads, verify
from channels.slack.api import SlackApi
from router.core import alerts
from router.core.actions import alerts as alert_actions
from router.core.chat import ChatError
from router.core.errors import DATABASE_DOWN_ERRORS, Forbidden, InvalidInput, NotFound, RouterError, Unauthorized
from router.core.refs import parse_ref
from router.core.store import slack_alerts
from router.services import Services
from router.web.http import read_body, services
from sla.alerts import compose_card, summary_line

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
ANSWER_WITHIN = 2.5
"""Seconds of work before Slack gets an interim answer (Slack gives up after 3)."""
AT_RISK_LINES = 30

_background: set[asyncio.Task[Any]] = set()
"""Work that outlived its request (keeps the tasks referenced until they finish)."""


@dataclass(frozen=True)
class Reply:
    """What the person who acted should read (ephemeral), or, for the dialog, its field errors."""

    message: blocks.Message | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _api(svc: Services) -> SlackApi:
    settings = svc.config.settings
    assert settings.slack_bot_token is not None
    return SlackApi(settings.slack_bot_token, settings.slack_api_url)


async def _verified_body(request: Request, svc: Services) -> bytes:
    settings = svc.config.settings
    if not settings.slack_signing_secret or not settings.slack_bot_token:
        raise NotFound("Slack is not configured here (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)")
    body = await read_body(request, MAX_BODY_BYTES)
    headers = {name.lower(): value for name, value in request.headers.items()}
    now = svc.clock()
    signature = verify.verify(headers, body, settings.slack_signing_secret, now.timestamp())
    async with svc.require_pool().acquire() as conn:
        if not await slack_alerts.first_time_seen(conn, signature, now):
            raise Unauthorized("this request was served already: replays are refused")
    return body


async def _agent(svc: Services, api: SlackApi, user_id: str) -> AgentIdentity:
    """The active agent behind a Slack user, by the email Slack shows for them (cached)."""
    now = svc.clock()
    pool = svc.require_pool()
    async with pool.acquire() as conn:
        email = await slack_alerts.cached_email(conn, user_id, now)
    if email is None:
        try:
            email = await api.user_email(user_id)
        except ChatError as exc:
            if exc.code == "user_not_found":
                raise Forbidden("Slack does not know your user, so you cannot be matched to an agent") from exc
            raise Forbidden(f"Slack could not tell us who you are right now ({exc.code}); try again shortly") from exc
        if email is None:
            raise Forbidden("Slack shows no email address for you, so you cannot be matched to an agent")
        async with pool.acquire() as conn:
            await slack_alerts.remember_person(conn, email, user_id, now)
    async with pool.acquire() as conn:
        agent = await slack_alerts.active_agent(conn, email)
    if agent is None:
        raise Forbidden(f"{email} is not an active agent here, so you cannot act on tickets; ask an admin")
    return AgentIdentity(agent.id, agent.email, agent.role)


async def _safely(work: Awaitable[Reply]) -> Reply:
    """Domain refusals become the reason, said to the person; anything else is logged."""
    try:
        return await work
    except RouterError as exc:
        return Reply(blocks.notice(exc.detail))
    except DATABASE_DOWN_ERRORS as exc:
        log.warning("Slack request while the database is unavailable: %r", exc)
        return Reply(blocks.notice("The ticket system cannot reach its database right now; try again in a minute."))
    except Exception:
        log.exception("Slack request failed")
        return Reply(blocks.notice("Something went wrong on our side; it has been logged."))


async def _answer(work: Coroutine[Any, Any, Reply], late: Callable[[Reply], Awaitable[None]]) -> Reply | None:
    """The reply, if the work is done within `ANSWER_WITHIN`; else None, and `late` gets the reply
    when it is ready."""
    task: asyncio.Task[Reply] = asyncio.ensure_future(_safely(work))
    _background.add(task)  # kept running (and referenced) even if Slack hangs up on us
    task.add_done_callback(_background.discard)
    await asyncio.wait({task}, timeout=ANSWER_WITHIN)
    if task.done():
        return task.result()

    async def follow_up() -> None:
        try:
            await late(await task)
        except Exception:
            log.exception("could not deliver a late answer to Slack")

    follower = asyncio.ensure_future(follow_up())
    _background.add(follower)
    follower.add_done_callback(_background.discard)
    return None


async def _tell(api: SlackApi, response_url: str | None, reply: Reply) -> None:
    if reply.message is not None and response_url:
        try:
            await api.respond(response_url, reply.message)
        except ChatError as exc:
            log.warning("could not answer through Slack's response_url: %s", exc)


# -- /slack/actions ---------------------------------------------------------------------------------

async def actions(request: Request) -> Response:
    svc = services(request)
    body = await _verified_body(request, svc)
    interaction = payloads.parse_interaction(body)
    api = _api(svc)
    if isinstance(interaction, payloads.ButtonPress):
        press = interaction

        async def told_late(reply: Reply) -> None:
            await _tell(api, press.response_url, reply)

        reply = await _answer(_press(svc, api, press), told_late)
        if reply is not None:
            await _tell(api, press.response_url, reply)
        return Response(status_code=200)
    if isinstance(interaction, payloads.ReassignSubmission):
        submission = interaction

        async def posted_late(reply: Reply) -> None:
            problems = "; ".join(reply.errors.values()) or (reply.message[0] if reply.message else "")
            if problems and submission.channel_id:
                await api.post_ephemeral(submission.channel_id, submission.user_id,
                                         blocks.notice(f"{submission.ref} was not reassigned: {problems}"))

        reply = await _answer(_submit(svc, api, submission), posted_late)
        if reply is not None and (reply.errors or reply.message):
            errors = reply.errors or {payloads.AGENT_BLOCK: reply.message[0] if reply.message else ""}
            return JSONResponse({"response_action": "errors", "errors": errors})
        return Response(status_code=200)
    return Response(status_code=200)  # an interaction we do not act on (a closed dialog, …)


async def _press(svc: Services, api: SlackApi, press: payloads.ButtonPress) -> Reply:
    actor = await _agent(svc, api, press.user_id)
    ctx = svc.actions()
    key = press.action_ts or uuid.uuid4().hex
    if press.button == "reassign":
        ticket, agents = await alert_actions.candidates(ctx, press.ref)
        if not agents:
            needs = " and ".join(filter(None, (ticket.skill and f"skill {ticket.skill}",
                                               ticket.language and f"language {ticket.language}")))
            return Reply(blocks.notice(f"Nobody else can take {ticket.ref}" + (f": it needs {needs}" if needs else "")))
        if press.trigger_id is None:
            raise InvalidInput("Slack sent no trigger for the dialog; press the button again")
        options = [(str(a.id), f"{a.name} ({a.status}, {a.load}/{a.capacity})") for a in agents]
        await api.open_dialog(press.trigger_id, blocks.reassign_dialog(ticket.ref, options, press.channel_id))
        return Reply()
    act = {"take": alert_actions.take, "escalate": alert_actions.escalate, "snooze": alert_actions.snooze}
    done = await act[press.button](ctx, actor, press.ref, key=key)
    # The card shows what was done; a press on an ephemeral card (`/sla T-1042`) gets a word back.
    return Reply(blocks.notice(done) if press.ephemeral else None)


async def _submit(svc: Services, api: SlackApi, submission: payloads.ReassignSubmission) -> Reply:
    if not submission.reason:
        return Reply(errors={payloads.REASON_BLOCK: "Say why: the reason stays in the ticket's history."})
    if len(submission.reason) > alert_actions.MAX_REASON_CHARS:
        return Reply(errors={payloads.REASON_BLOCK: f"At most {alert_actions.MAX_REASON_CHARS} characters."})
    try:
        actor = await _agent(svc, api, submission.user_id)
        await alert_actions.reassign(svc.actions(), actor, submission.ref, submission.agent_id, submission.reason,
                                     key=f"dialog:{submission.view_id or uuid.uuid4().hex}")
    except RouterError as exc:
        return Reply(errors={payloads.AGENT_BLOCK: exc.detail})
    return Reply()


# -- /slack/commands --------------------------------------------------------------------------------

async def commands(request: Request) -> Response:
    svc = services(request)
    body = await _verified_body(request, svc)
    command = payloads.parse_command(body)
    api = _api(svc)

    async def told_late(reply: Reply) -> None:
        await _tell(api, command.response_url, reply)

    reply = await _answer(_command(svc, api, command), told_late)
    message = reply.message if reply is not None and reply.message else blocks.notice("Looking that up…")
    text, layout = message
    return JSONResponse({"response_type": "ephemeral", "text": text, "blocks": layout})


USAGE = "`/sla` lists the tickets at risk for your team; `/sla T-1042` shows one ticket with its buttons."


async def _command(svc: Services, api: SlackApi, command: payloads.SlashCommand) -> Reply:
    actor = await _agent(svc, api, command.user_id)
    config, now = svc.config, svc.clock()
    argument = command.text.strip()
    if argument in ("", "list"):
        async with svc.require_pool().acquire() as conn:
            agent = await slack_alerts.agent_by_id(conn, actor.id) if actor.id is not None else None
            team = agent.team if agent is not None else None
            ids = await slack_alerts.at_risk(conn, team, now, AT_RISK_LINES + 1)
            found = await alerts.facts(conn, config, ids, now)
        lines = [summary_line(*found[i], now=now) for i in ids if i in found]
        return Reply(blocks.at_risk_list(team, lines, alerts.at_risk_url(config)))
    number = parse_ref(argument)
    if number is None:
        return Reply(blocks.notice(USAGE))
    async with svc.require_pool().acquire() as conn:
        ticket_id = await slack_alerts.ticket_id_of(conn, number)
        if ticket_id is None:
            raise NotFound(f"there is no ticket {argument.upper()}")
        ticket, clocks = (await alerts.facts(conn, config, [ticket_id], now, every_clock=True))[ticket_id]
        row = await slack_alerts.message(conn, ticket_id)
    timezone = config.team_timezone(ticket.team)
    card = compose_card(ticket, clocks, timezone=timezone, now=now,
                               snoozed_until=row.snoozed_until if row else None)
    return Reply(blocks.card(card))


routes = [
    Route("/slack/actions", actions, methods=["POST"]),
    Route("/slack/commands", commands, methods=["POST"]),
]
