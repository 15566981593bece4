"""`/admin/channels`: is each channel set up, when did it last receive a message, what waits in the
outbox, and which items died (with a button to send them again).

"Set up" reads the settings (environment variables; their values are never shown): receiving needs
what the channel's intake checks, sending what its sender uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.config import Settings
from router.core.actions import admin as admin_actions
from router.core.refs import ref
from router.core.store import channel_status
from router.core.store.channel_status import Backlog
from router.core.store.outbox import INTERRUPTED
from router.web.http import services
from router.web.inbox.admin.common import done, editor, page, path_id, viewer

SECTION = "/admin/channels"

Needs = tuple[tuple[str, str], ...]
"""(Settings attribute, environment variable) pairs a direction needs; () when it needs nothing."""


@dataclass(frozen=True)
class ChannelSetup:
    name: str
    label: str
    receives: Needs | None  # None: the channel does not receive customer messages
    sends: Needs | None  # None: nothing is sent on this channel (replies go out another way)


_META: Needs = (("meta_app_secret", "META_APP_SECRET"), ("meta_verify_token", "META_VERIFY_TOKEN"))
_META_SENDS: Needs = (("meta_access_token", "META_ACCESS_TOKEN"),)
CHANNELS = (
    ChannelSetup("email", "Email", (), (("smtp_relay", "ROUTER_SMTP_RELAY"),)),
    ChannelSetup("webform", "Web form", (), None),
    ChannelSetup("api", "Integration API", (("api_token", "ROUTER_API_TOKEN"),), None),
    ChannelSetup("messenger", "Messenger", _META, _META_SENDS),
    ChannelSetup("instagram", "Instagram", _META, _META_SENDS),
    ChannelSetup("whatsapp", "WhatsApp", _META, _META_SENDS),
    ChannelSetup("telegram", "Telegram", (("telegram_bot_token", "TELEGRAM_BOT_TOKEN"),
                                          ("telegram_secret_token", "TELEGRAM_SECRET_TOKEN")),
                 (("telegram_bot_token", "TELEGRAM_BOT_TOKEN"),)),
    ChannelSetup("line", "LINE", (("line_channel_secret", "LINE_CHANNEL_SECRET"),),
                 (("line_channel_token", "LINE_CHANNEL_TOKEN"),)),
    # Slack receives no customer messages; "receiving" is its buttons and the /sla command.
    ChannelSetup("slack", "Slack (SLA alerts)", (("slack_signing_secret", "SLACK_SIGNING_SECRET"),),
                 (("slack_bot_token", "SLACK_BOT_TOKEN"),)),
)


def missing(settings: Settings, needs: Needs) -> tuple[str, ...]:
    """The environment variables of `needs` that are not set."""
    return tuple(variable for attribute, variable in needs if not getattr(settings, attribute))


@dataclass(frozen=True)
class ChannelRow:
    name: str
    label: str
    receives: bool | None  # None: not applicable
    receive_missing: tuple[str, ...]
    sends: bool | None
    send_missing: tuple[str, ...]
    last_received: datetime | None
    backlog: Backlog


def channel_rows(settings: Settings, last: dict[str, datetime], backlog: dict[str, Backlog]) -> list[ChannelRow]:
    """The known channels, then any other channel that received messages or has outbox items (the
    integration API accepts any channel name)."""
    known = {setup.name for setup in CHANNELS}
    others = sorted((set(last) | set(backlog)) - known)
    setups = [*CHANNELS, *(ChannelSetup(name, name, (), None) for name in others)]
    rows = []
    for setup in setups:
        receive_missing = missing(settings, setup.receives) if setup.receives is not None else ()
        send_missing = missing(settings, setup.sends) if setup.sends is not None else ()
        rows.append(ChannelRow(
            name=setup.name, label=setup.label,
            receives=None if setup.receives is None else not receive_missing, receive_missing=receive_missing,
            sends=None if setup.sends is None else not send_missing, send_missing=send_missing,
            last_received=last.get(setup.name), backlog=backlog.get(setup.name, Backlog())))
    return rows


async def channels_page(request: Request) -> Response:
    agent = await viewer(request)
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        last = await channel_status.last_received(conn, [setup.name for setup in CHANNELS])
        backlog = await channel_status.outbox_backlog(conn)
        dead = await channel_status.dead_items(conn)
    return page(request, agent, "admin_channels.html", SECTION, {
        "channels": channel_rows(svc.config.settings, last, backlog), "dead": dead,
        "dead_total": sum(b.dead for b in backlog.values()), "interrupted": INTERRUPTED, "ref": ref,
    })


async def retry(request: Request) -> Response:
    agent, _ = await editor(request)
    await admin_actions.retry_outbox_item(services(request).actions(), agent.identity, path_id(request, "item_id"))
    return done(SECTION, "outbox-retried")


routes = [
    Route("/admin/channels", channels_page, methods=["GET"]),
    Route("/admin/outbox/{item_id:int}/retry", retry, methods=["POST"]),
]
