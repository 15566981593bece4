"""`router demo`: realistic sample traffic into a running instance, on every channel it serves."""

from __future__ import annotations

import sys
from email.message import EmailMessage

import aiosmtplib
import httpx

from router.config import Settings

WEB_FORM = [
    {"name": "山田 花子", "email": "hanako@example.jp", "subject": "請求について",
     "message": "先月の請求金額が二重になっています。返金をお願いします。"},
    {"name": "Tom Baker", "email": "tom@example.net", "subject": "Cannot login",
     "message": "I get an error every time I try to login since yesterday."},
]
EMAILS = [
    ("佐藤 健", "ken@example.jp", "配送について", "注文した商品がまだ届かないのですが、配送状況を教えてください。"),
    ("Maria Lopez", "maria@example.org", "URGENT: charged twice",
     "I was charged twice for order 1182, please refund asap."),
]
API = [
    {"channel": "api", "sender": {"id": "crm-991", "name": "Hanako Yamada", "email": "hanako@example.jp"},
     "text": "(via CRM) お客様から追加の連絡：請求書の再発行も希望されています。", "external_id": "crm-note-1"},
]


async def send_demo_traffic(settings: Settings) -> int:
    base = f"http://{settings.http_host}:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        try:
            await client.get("/healthz")
        except httpx.TransportError:
            print(f"No router answers at {base}: start it with `make run` first.", file=sys.stderr)
            return 1
        for form in WEB_FORM:
            response = await client.post("/support", json=form)
            print(f"web form  {form['email']:<22} → {response.status_code} {response.json().get('ticket_ref')}")
        for name, address, subject, text in EMAILS:
            message = EmailMessage()
            message["From"] = f"{name} <{address}>"
            message["To"] = "support@example.com"
            message["Subject"] = subject
            message.set_content(text)
            reply = await aiosmtplib.send(message, hostname=settings.smtp_host, port=settings.smtp_port)
            print(f"email     {address:<22} → {reply[1]}")
        if settings.api_token:
            for body in API:
                response = await client.post("/api/v1/messages", json=body,
                                             headers={"Authorization": f"Bearer {settings.api_token}"})
                sender = body["sender"]
                assert isinstance(sender, dict)
                print(f"api       {sender['email']:<22} → {response.status_code} {response.json()}")
        else:
            print("api       skipped (set ROUTER_API_TOKEN on both sides to include the integration API)")
    return 0

