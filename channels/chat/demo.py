"""`router demo`'s chat traffic: visitors writing in the widget, over the WebSocket as a browser does."""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake

VISITORS = [
    ("ja", "高橋 美咲", "アプリにログインできません。パスワードを再設定してもエラーが出ます。"),
    ("en", "Liam Chen", "Hi! I ordered a gift yesterday. Can I still change the delivery address?"),
]


async def send_chat_traffic(base_url: str) -> None:
    """Each visitor opens the chat (a new visitor each run), writes, and waits for the confirmation."""
    url = base_url.replace("http", "ws", 1) + "/chat/ws"
    for language, name, text in VISITORS:
        try:
            async with connect(url, open_timeout=10) as ws:  # no Origin: a script, not a page on another site
                await ws.send(json.dumps({"type": "hello", "token": None, "after": 0, "lang": language, "name": name}))
                await ws.send(json.dumps({"type": "message", "id": f"demo-{time.time_ns()}", "text": text}))
                answer = await _until(ws, ("sent", "failed", "error"))
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            print(f"chat      {name:<22} → could not connect: {exc}")
            continue
        print(f"chat      {name:<22} → {answer.get('type')} {answer.get('ref') or answer.get('detail', '')}")


async def _until(ws: ClientConnection, kinds: tuple[str, ...]) -> dict[str, object]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(frame, dict) and frame.get("type") in kinds:
            return frame
