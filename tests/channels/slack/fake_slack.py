"""A local HTTP server speaking Slack's Web API, for slack-sdk to talk to through `SLACK_API_URL`.

It checks what Slack checks — the bearer token, the method name, a JSON body (`application/json`) or a
form (`application/x-www-form-urlencoded`) or a query string, the required arguments, the shape and
limits of Block Kit — and answers as Slack does: `{"ok": true, …}`, `{"ok": false, "error": …}`, and
HTTP 429 with `Retry-After`. Tests script failures (`fail`, `rate_limit`), read every call, and see
each message as Slack would show it now (posts updated in place). `response_url` posts land on
`/hooks/…` and are kept too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

TOKEN = "xoxb-fake-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNELS = {"#alerts": "C0ALERTS", "#tokyo-leads": "C0TOKYO"}
USERS = {
    "U0AIKO": "aiko@example.com", "U0BEN": "ben@example.com", "U0CHIE": "chie@example.com",
    "U0LENA": "lena@example.com", "U0STRANGER": "stranger@elsewhere.example", "U0NOMAIL": None,
}
KNOWN_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral", "users.lookupByEmail", "users.info",
                 "views.open", "auth.test"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    content_type: str


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    versions: list[list[dict[str, Any]]] = field(default_factory=list)  # every layout it showed, in order

    def all_text(self) -> str:
        """Every text in the current blocks, joined: what a person reads."""
        return "\n".join(_texts(self.blocks))


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


class BlockProblem(Exception):
    pass


def check_blocks(blocks: Any) -> None:
    """Slack's own limits on what `chat.postMessage`/`chat.update` take (invalid_blocks otherwise)."""
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        raise BlockProblem("blocks must be a list of 1 to 50 blocks")
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            text = block.get("text")
            fields = block.get("fields", [])
            if text is None and not fields:
                raise BlockProblem("a section needs text or fields")
            if text is not None and len(text.get("text", "")) > 3000:
                raise BlockProblem("section text over 3000 characters")
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                raise BlockProblem("too many or too long fields")
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 25:
                raise BlockProblem("actions need 1 to 25 elements")
            for element in elements:
                if (element.get("type") != "button" or not element.get("action_id")
                        or len(element.get("value", "")) > 2000):
                    raise BlockProblem("a button needs an action_id and a short value")
                if element["text"]["type"] != "plain_text" or len(element["text"]["text"]) > 75:
                    raise BlockProblem("a button's text is plain text of at most 75 characters")
        elif kind == "context":
            if not 0 < len(block.get("elements", [])) <= 10:
                raise BlockProblem("context needs 1 to 10 elements")
        elif kind == "header":
            if block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150:
                raise BlockProblem("a header is plain text of at most 150 characters")
        else:
            raise BlockProblem(f"unexpected block type {kind!r}")


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.hooks: list[tuple[str, dict[str, Any]]] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.users: dict[str, str | None] = dict(USERS)
        self._failures: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        self._ts = itertools.count(1)
        self.delay = 0.0
        self.port = 0
        self._runner: web.AppRunner | None = None

    # -- scripting ------------------------------------------------------------------------------
    def fail(self, method: str, error: str, *, times: int = 1, status: int = 200) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}`."""
        self._failures.setdefault(method, []).extend([(status, {"ok": False, "error": error}, {})] * times)

    def rate_limit(self, method: str, retry_after: int, *, times: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with `Retry-After`."""
        self._failures.setdefault(method, []).extend(
            [(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})] * times)

    # -- reading --------------------------------------------------------------------------------
    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def posts(self) -> list[Message]:
        """Messages as Slack shows them now, in the order they were posted."""
        return list(self.messages.values())

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r") -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    # -- serving --------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/hooks/{name}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.hooks.append((request.match_info["name"], body))
        return web.Response(text="ok")

    async def _arguments(self, request: web.Request) -> tuple[dict[str, Any], str]:
        content_type = request.headers.get("Content-Type", "")
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            raw = await request.read()
            if content_type.startswith("application/json"):
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise BlockProblem("a JSON body must be an object")
                args.update(body)
            elif content_type.startswith("application/x-www-form-urlencoded"):
                args.update(parse_qsl(raw.decode(), keep_blank_values=True))
            elif raw:
                raise BlockProblem(f"unsupported content type {content_type!r}")
        return args, content_type

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            error = "not_authed" if "Authorization" not in request.headers else "invalid_auth"
            return web.json_response({"ok": False, "error": error})
        try:
            args, content_type = await self._arguments(request)
        except (BlockProblem, ValueError):
            return web.json_response({"ok": False, "error": "invalid_form_data"})
        self.calls.append(Call(method, args, content_type))
        if method not in KNOWN_METHODS:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        scripted = self._failures.get(method)
        if scripted:
            status, body, headers = scripted.pop(0)
            return web.json_response(body, status=status, headers=headers)
        try:
            answer = getattr(self, "_" + method.replace(".", "_"))(args)
        except BlockProblem as exc:
            answer = {"ok": False, "error": "invalid_blocks", "errors": [str(exc)]}
        except KeyError as exc:
            answer = {"ok": False, "error": "invalid_arguments", "errors": [f"missing {exc}"]}
        return web.json_response(answer)

    def _channel_id(self, channel: str) -> str | None:
        return CHANNELS.get(channel) or (channel if channel in CHANNELS.values() else None)

    @staticmethod
    def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
        blocks = args.get("blocks", [])
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        check_blocks(blocks)
        return blocks

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(args["channel"])
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        blocks = self._blocks(args)
        if not args.get("text"):
            raise KeyError("text")
        ts = f"17000{next(self._ts):05d}.000100"
        self.messages[(channel, ts)] = Message(channel, ts, args["text"], blocks, [blocks])
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args["text"], "blocks": blocks}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if args["channel"] not in CHANNELS.values():
            return {"ok": False, "error": "channel_not_found"}
        message = self.messages.get((args["channel"], args["ts"]))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.blocks = self._blocks(args)
        message.text = args["text"]
        message.versions.append(message.blocks)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._channel_id(args["channel"]) is None:
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append({"channel": args["channel"], "user": args["user"], "text": args["text"]})
        return {"ok": True, "message_ts": f"17000{next(self._ts):05d}.000200"}

    def _users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        email = args["email"].lower()
        for user_id, known in self.users.items():
            if known == email:
                return {"ok": True, "user": {"id": user_id, "profile": {"email": known}}}
        return {"ok": False, "error": "users_not_found"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args["user"]
        if user_id not in self.users:
            return {"ok": False, "error": "user_not_found"}
        profile = {"email": self.users[user_id]} if self.users[user_id] else {}
        return {"ok": True, "user": {"id": user_id, "profile": profile}}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("trigger_id"):
            raise KeyError("trigger_id")
        self.views.append(view)
        return {"ok": True, "view": {"id": f"V{len(self.views):04d}", **view}}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team": "Test", "user": "router"}
