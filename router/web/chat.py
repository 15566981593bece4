"""Live chat at the HTTP edge: the widget script and its styles, the demo page, and the WebSocket.

The visitor's identity: the server mints a random visitor id and signs it (`channels.chat.token`);
the widget keeps that token in a first-party cookie of the site that embeds it (set by the widget's
script, so not HttpOnly: a cookie our server set would be a third-party cookie on a customer's site,
which browsers block) and presents it in its first frame, never in the URL. To the pipeline the
visitor is a proved identity `chat:<visitor id>`; an email address they type is a claim (SPEC §2.4)
until they enter the code sent to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from channels.chat import protocol
from channels.chat.token import BadToken, VisitorTokens
from router.config import ChatConfig
from router.core.actions import identity as proofs
from router.core.errors import DATABASE_DOWN_ERRORS, InvalidInput, RateLimited, RouterError
from router.core.inbound import Identity, InboundMessage, email_identity
from router.core.store import chat
from router.services import Services
from router.web.chat_hub import ONLINE_FOR, ChatHub, Socket

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parents[2] / "channels" / "chat" / "static"
HELLO_SECONDS = 10.0
CLOSE_POLICY = 1008
CLOSE_BAD_TOKEN = 4401
CLOSE_TOO_MANY = 4429
CLOSE_IDLE = 4408
CLOSE_PROTOCOL = 4400


class _Asset:
    """A static file read once, served with a strong ETag: revalidated every few minutes, so a new
    widget reaches every embedding site soon after a deploy while each page load costs a 304."""

    def __init__(self, name: str, media_type: str) -> None:
        self.body = (STATIC / name).read_bytes()
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    async def serve(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": "public, max-age=300",
                   "Cross-Origin-Resource-Policy": "cross-origin", "Access-Control-Allow-Origin": "*"}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


widget_js = _Asset("widget.js", "text/javascript; charset=utf-8")
widget_css = _Asset("widget.css", "text/css; charset=utf-8")
demo_html = (STATIC / "demo.html").read_text(encoding="utf-8")


async def demo_page(request: Request) -> Response:
    return HTMLResponse(demo_html)


def origin_allowed(origin: str, config: ChatConfig, public_url: str) -> bool:
    """The page opening the socket is on our own site or one the config allows. (Browsers always
    send Origin; a client that is no browser can claim any Origin, so its absence is not refused.)"""
    own = urlsplit(public_url)
    allowed = {f"{own.scheme}://{own.netloc}", *config.allowed_origins}
    return "*" in allowed or origin.rstrip("/") in allowed


def _hub(websocket: WebSocket, svc: Services) -> ChatHub:
    hub: ChatHub | None = getattr(websocket.app.state, "chat_hub", None)
    if hub is None:
        hub = ChatHub(svc.require_pool(), svc.clock,
                      messages_per_minute_per_ip=svc.config.chat.messages_per_minute_per_ip,
                      listen_dsn=svc.config.settings.listen_database_url)
        websocket.app.state.chat_hub = hub
    return hub


async def chat_socket(websocket: WebSocket) -> None:
    svc: Services = websocket.app.state.services
    config = svc.config.chat
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, config, svc.config.settings.public_url):
        log.info("chat: refused a socket from origin %r", origin[:200])
        await websocket.close(code=CLOSE_POLICY)  # before accept: the handshake is answered 403
        return
    address = websocket.client.host if websocket.client else "unknown"
    hub = _hub(websocket, svc)
    await websocket.accept()
    if hub.connections_from(address) >= config.connections_per_ip:
        await _refuse(websocket, CLOSE_TOO_MANY, "too_many_connections",
                      f"at most {config.connections_per_ip} chat connections per address")
        return
    with hub.admitted(address):
        await _serve(websocket, svc, hub, address)


async def _serve(websocket: WebSocket, svc: Services, hub: ChatHub, address: str) -> None:
    config = svc.config.chat
    try:
        hello = await _hello(websocket, config)
    except WebSocketDisconnect:
        return
    if hello is None:
        return
    tokens = VisitorTokens(svc.config.settings.secret_key)
    try:
        visitor = tokens.visitor_of(hello.token) if hello.token else tokens.new_visitor()
    except BadToken:
        await _refuse(websocket, CLOSE_BAD_TOKEN, "bad_token", "the chat token is not valid; start a new chat")
        return
    now = svc.clock()
    try:
        async with svc.require_pool().acquire() as conn:
            conversation_id = await chat.open_conversation(conn, visitor, now)
            await chat.mark_online(conn, [conversation_id], now + ONLINE_FOR)
            state = (await chat.states(conn, [conversation_id], now))[0]
    except DATABASE_DOWN_ERRORS as exc:
        log.warning("chat: database unavailable (%r); the widget retries", exc)
        await _refuse(websocket, 1011, "unavailable", "the chat is unavailable for a moment; reconnecting")
        return
    after = hello.after if hello.after <= state.last_seq else 0
    socket = Socket(websocket, visitor, conversation_id, after, address, config.messages_per_minute)
    hub.join(socket)
    try:
        await socket.send({"type": "welcome", "token": tokens.sign(visitor), "reset": after != hello.after,
                           "last": state.last_seq, "email": state.claimed_email})
        await hub.push(conversation_id)
        await socket.send_state(state)
        await _converse(websocket, svc, hub, socket, hello, state.claimed_email)
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass  # the widget went away (maybe while we wrote to it); it resumes from its last entry
    except DATABASE_DOWN_ERRORS as exc:
        log.warning("chat: database unavailable (%r); closing the socket so the widget retries", exc)
        await websocket.close(code=1011)
    finally:
        await hub.leave(socket)


async def _refuse(websocket: WebSocket, code: int, error: str, detail: str) -> None:
    await websocket.send_json({"type": "error", "code": error, "detail": detail})
    await websocket.close(code=code, reason=error)


async def _hello(websocket: WebSocket, config: ChatConfig) -> protocol.Hello | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), HELLO_SECONDS)
    except TimeoutError:
        await _refuse(websocket, CLOSE_PROTOCOL, "no_hello", "the first frame must be a hello")
        return None
    except KeyError:  # a binary frame
        await _refuse(websocket, CLOSE_PROTOCOL, "bad_frame", "frames are JSON text")
        return None
    try:
        frame = protocol.parse(text, max_message_chars=config.max_message_chars)
    except protocol.BadFrame as exc:
        await _refuse(websocket, CLOSE_BAD_TOKEN if exc.code == "bad_token" else CLOSE_PROTOCOL, exc.code, exc.detail)
        return None
    if not isinstance(frame, protocol.Hello):
        await _refuse(websocket, CLOSE_PROTOCOL, "no_hello", "the first frame must be a hello")
        return None
    return frame


async def _converse(websocket: WebSocket, svc: Services, hub: ChatHub, socket: Socket, hello: protocol.Hello,
                    claimed: str | None) -> None:
    claim = email_identity(claimed) if claimed else None
    while True:
        config = svc.config.chat
        try:
            message = await asyncio.wait_for(websocket.receive(), config.idle_timeout.total_seconds())
        except TimeoutError:
            await _refuse(websocket, CLOSE_IDLE, "idle", "closed after a long silence; reconnect to continue")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await socket.send({"type": "error", "code": "bad_frame", "detail": "frames are JSON text"})
            continue
        try:
            frame = protocol.parse(text, max_message_chars=config.max_message_chars)
        except protocol.BadFrame as exc:
            await socket.send({"type": "error", "code": exc.code, "detail": exc.detail,
                               **({"id": exc.client_id} if exc.client_id else {})})
            continue
        if isinstance(frame, protocol.Message):
            await _message(svc, hub, socket, frame, hello, claim)
        elif isinstance(frame, protocol.ClaimEmail):
            claim = frame.identity
            await _claim(svc, socket, frame.identity)
        elif isinstance(frame, protocol.Verify):
            await _verify(svc, socket, claim, frame.code)
        elif isinstance(frame, protocol.Ping):
            await socket.send({"type": "pong"})
        else:
            await socket.send({"type": "error", "code": "bad_frame", "detail": "hello is sent once"})


async def _message(svc: Services, hub: ChatHub, socket: Socket, frame: protocol.Message, hello: protocol.Hello,
                   claim: Identity | None) -> None:
    try:
        socket.limiter.check(socket.visitor_id)
        hub.address_limiter.check(socket.address)
    except RateLimited as exc:
        await socket.send({"type": "error", "code": "rate_limited", "id": frame.client_id, "detail": exc.detail,
                           "retry_after": 60 / svc.config.chat.messages_per_minute})
        return
    pool = svc.require_pool()
    inbound = InboundMessage(
        channel="chat", identities=(Identity("chat", socket.visitor_id),), claims=(claim,) if claim else (),
        text=frame.text, external_id=f"{socket.visitor_id}:{frame.client_id}", sender_name=hello.name,
        metadata={"client_id": frame.client_id})
    started = time.perf_counter()
    try:
        result = await svc.pipeline.ingest(pool, inbound)
        if result.message_id is None:
            raise InvalidInput("that message id was used already")
        async with pool.acquire() as conn, conn.transaction():
            seq = await chat.record_inbound(conn, socket.visitor_id, message_id=result.message_id,
                                            client_id=frame.client_id, body=frame.text, ticket_id=result.ticket_id,
                                            now=svc.clock())
    except InvalidInput as exc:
        await socket.send({"type": "failed", "id": frame.client_id, "code": exc.code, "detail": exc.detail,
                           "retry": False})
        return
    except RouterError as exc:
        await _retry_later(socket, frame.client_id, exc)
        return
    except DATABASE_DOWN_ERRORS as exc:
        await _retry_later(socket, frame.client_id, exc)
        return
    svc.metrics.record_ingest("chat", result, time.perf_counter() - started)
    await socket.send({"type": "sent", "id": frame.client_id, "seq": seq, "ref": result.ticket_ref})


async def _retry_later(socket: Socket, client_id: str, exc: BaseException) -> None:
    log.warning("chat: a message could not be stored (%r); the widget retries", exc)
    await socket.send({"type": "failed", "id": client_id, "code": "unavailable", "detail": "not stored yet; retrying",
                       "retry": True})


async def _claim(svc: Services, socket: Socket, identity: Identity) -> None:
    """The visitor typed an address: kept as a claim on their next messages, and a code is sent to it
    (the address's owner receives it; only entering it proves the visitor is that owner)."""
    async with svc.require_pool().acquire() as conn:
        await chat.claim_email(conn, socket.visitor_id, identity.value, svc.clock())
        customer_id = await chat.visitor_customer(conn, socket.visitor_id)
    if customer_id is None:  # no message yet, so no customer: the claim rides on their first message
        await socket.send({"type": "email_saved", "email": identity.value})
        return
    try:
        masked = await proofs.request_proof(svc.actions(), customer_id, identity, channel="chat")
    except RouterError as exc:
        await socket.send({"type": "error", "code": exc.code, "detail": exc.detail})
        return
    await socket.send({"type": "code_sent", "to": masked})


async def _verify(svc: Services, socket: Socket, claim: Identity | None, code: str) -> None:
    async with svc.require_pool().acquire() as conn:
        customer_id = await chat.visitor_customer(conn, socket.visitor_id)
    if claim is None or customer_id is None:
        await socket.send({"type": "error", "code": "no_claim", "detail": "ask for a code first"})
        return
    try:
        proved = await proofs.verify_proof(svc.actions(), customer_id, claim, code)
    except RouterError as exc:
        await socket.send({"type": "error", "code": exc.code, "detail": exc.detail})
        return
    await socket.send({"type": "verified", "email": claim.value} if proved
                      else {"type": "error", "code": "wrong_code", "detail": "that code is not right"})


routes = [
    Route("/chat", demo_page, methods=["GET"]),
    Route("/chat/widget.js", widget_js.serve, methods=["GET"]),
    Route("/chat/widget.css", widget_css.serve, methods=["GET"]),
    WebSocketRoute("/chat/ws", chat_socket),
]
