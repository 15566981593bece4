"""The identity panel on the ticket page: the suggested match with its reason and confidence, Merge
and Dismiss, confirming an identity, and recent merges with Undo for leads — in Japanese and English,
CSRF-protected like every inbox form."""

from __future__ import annotations

import re

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from tests.conftest import ORIGIN, post_message, sign_in

HANAKO = "hanako@example.net"
HX = {"HX-Request": "true", "Origin": ORIGIN}


async def spoofed(client, auth, pool, config, clock) -> tuple[str, str]:
    mail = InboundMessage("email", (Identity("email", HANAKO),), "My invoice is wrong", sender_name="Hanako Yamada",
                          external_id="h-1@example.net")
    hanako = await Pipeline(config, clock).ingest(pool, mail)
    visitor = await post_message(client, auth, "hi, it is me", sender_id="visitor-3", email=HANAKO, channel="chat")
    assert hanako.ticket_ref is not None
    return hanako.ticket_ref, visitor


async def test_the_panel_shows_the_match_and_an_agent_dismisses_it(client, auth, pool, config, clock):
    _, visitor = await spoofed(client, auth, pool, config, clock)
    token = await sign_in(client, "aiko@example.com")
    page = await client.get(f"/inbox/{visitor}")
    assert page.status_code == 200 and f'hx-get="/inbox/{visitor}/identity"' in page.text
    panel = await client.get(f"/inbox/{visitor}/identity", headers=HX)
    assert panel.status_code == 200
    assert "Possibly the same customer as Hanako Yamada" in panel.text
    assert f"typed email {HANAKO}" in panel.text and "Confidence 60%" in panel.text
    assert "<html" not in panel.text  # a fragment for htmx
    assert ">Undo<" not in panel.text
    sid = re.search(r"/identity/suggestions/(\d+)/dismiss", panel.text).group(1)

    forged = await client.post(f"/inbox/{visitor}/identity/suggestions/{sid}/dismiss", data={"reason": "x"},
                               headers=HX)
    assert forged.status_code in (400, 403)
    assert await pool.fetchval("SELECT status FROM identity_suggestions") == "open"

    dismissed = await client.post(f"/inbox/{visitor}/identity/suggestions/{sid}/dismiss",
                                  data={"csrf_token": token, "reason": "asked: different person"}, headers=HX)
    assert dismissed.status_code == 200 and "Dismissed: this suggestion will not come back." in dismissed.text
    assert "Possibly the same customer" not in dismissed.text
    assert await pool.fetchval("SELECT decision_note FROM identity_suggestions") == "asked: different person"

    # Without JavaScript: a page of its own, a redirect after the form.
    standalone = await client.get(f"/inbox/{visitor}/identity")
    assert "<html" in standalone.text and "No possible matches." in standalone.text


async def test_an_agent_merge_refused_is_explained_and_a_lead_merges_and_undoes(client, auth, pool, config, clock):
    _, visitor = await spoofed(client, auth, pool, config, clock)
    token = await sign_in(client, "aiko@example.com")
    panel = await client.get(f"/inbox/{visitor}/identity", headers=HX)
    sid = re.search(r"/identity/suggestions/(\d+)/merge", panel.text).group(1)
    refused = await client.post(f"/inbox/{visitor}/identity/suggestions/{sid}/merge", data={"csrf_token": token},
                                headers=HX)
    assert refused.status_code == 200 and "only leads and admins" in refused.text and 'role="alert"' in refused.text
    assert not await pool.fetchval("SELECT count(*) FROM customer_merges")

    await client.post("/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN})
    client.cookies.clear()
    token = await sign_in(client, "lena@example.com")
    merged = await client.post(f"/inbox/{visitor}/identity/suggestions/{sid}/merge",
                               data={"csrf_token": token, "reason": "same order number"}, headers=HX)
    assert merged.status_code == 200 and "Merged." in merged.text
    assert "same order number" in merged.text and ">Undo<" in merged.text
    mid = re.search(r"/identity/merges/(\d+)/undo", merged.text).group(1)
    undone = await client.post(f"/inbox/{visitor}/identity/merges/{mid}/undo",
                               data={"csrf_token": token, "reason": "it was her brother"}, headers={"Origin": ORIGIN})
    assert undone.status_code == 303 and undone.headers["location"].endswith("/identity?done=undone")
    assert await pool.fetchval("SELECT undo_reason FROM customer_merges") == "it was her brother"
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 2


async def test_confirming_an_identity_in_japanese(client, auth, pool, config, clock):
    hanako, _ = await spoofed(client, auth, pool, config, clock)
    token = await sign_in(client, "chie@example.com")  # a Japanese-speaking agent
    added = await client.post(f"/inbox/{hanako}/identity/identities",
                              data={"csrf_token": token, "kind": "phone", "value": "090-1234-5678"},
                              headers={**HX, "Accept-Language": "ja"})
    assert added.status_code == 200
    assert "連絡先を確認しました。" in added.text and "phone: 09012345678" in added.text
    bad = await client.post(f"/inbox/{hanako}/identity/identities",
                            data={"csrf_token": token, "kind": "phone", "value": "12"}, headers=HX)
    assert bad.status_code == 200 and "not a valid phone" in bad.text
    assert 'aria-describedby="identity-error"' in bad.text
