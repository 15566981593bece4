"""Canned responses: filling placeholders never fails, admins add/edit/delete them per language with
the same placeholder rule as router.toml, and the reply box gets both sources for a ticket's language."""

from __future__ import annotations

import html
import re

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.config import CANNED_FIELDS, Config, Settings
from router.core.canned import Canned, check_text, fill
from router.core.store import canned
from tests.web.inbox.test_admin import admin_config, agent_id, alert, notice, post, snapshot

VALUES = {"customer_name": "山田 太郎", "ref": "T-1042", "agent_name": "Aiko", "subject": "返金について"}


@pytest.fixture
def config(settings: Settings) -> Config:
    return admin_config(settings)


@pytest.fixture(autouse=True)
async def synced(pool: asyncpg.Pool, config: Config) -> None:
    from agents import store as agent_store

    async with pool.acquire() as conn:
        await agent_store.sync_from_config(conn, config.teams, config.agents)


@pytest.fixture
async def admin(app, config):
    import httpx

    from tests.conftest import sign_in

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as client:
        yield client, await sign_in(client, "ada@example.com")


# -- filling ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "filled"), [
    ("Hello {customer_name}, about {ref} ({subject}). {agent_name}",
     "Hello 山田 太郎, about T-1042 (返金について). Aiko"),
    ("Use {{braces}} like {{this}}", "Use {braces} like {this}"),
    ("{{{ref}}}", "{T-1042}"),
    ("Unknown {order} and {0} and {} stay", "Unknown {order} and {0} and {} stay"),
    ("A lone { or } stays, {ref} is filled", "A lone { or } stays, T-1042 is filled"),
    ("{ref!r} {ref:>10}", "T-1042 T-1042"),
    ("{ customer_name }", "山田 太郎"),
])
def test_fill(text, filled):
    assert fill(text, **VALUES) == filled


def test_values_are_inserted_once_never_read_again():
    filled = fill("Dear {customer_name}, {ref}", **{**VALUES, "customer_name": "{ref} {{x}}"})
    assert filled == "Dear {ref} {{x}}, T-1042"


@given(st.text())
def test_fill_never_raises(text):
    assert isinstance(fill(text, **VALUES), str)


_safe = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)


@given(st.lists(st.one_of(_safe, st.sampled_from(["{{", "}}", *(f"{{{f}}}" for f in CANNED_FIELDS)])), max_size=12))
def test_a_text_that_passes_the_check_fills_like_the_config_templates(parts):
    """Whatever router.toml accepts, `fill` reads as `str.format` would: the two sources agree."""
    text = "".join(parts)
    assert check_text(text) is None
    assert fill(text, **VALUES) == text.format(**VALUES)


# -- the reply box's list -----------------------------------------------------------------------------------

async def test_available_merges_config_and_admin_ones_for_the_ticket_language(pool, config):
    async with pool.acquire() as conn:
        for name, language in (("Greeting", "ja"), ("Greeting", "en"), ("Signature", None)):
            await canned.create(conn, name=name, text=f"{name} {language}", language=language, actor_id=None,
                                now=_now())
        for_ja = await canned.available(conn, config.canned, "ja")
        unknown = await canned.available(conn, config.canned, None)
    assert [(c.name, c.language, c.source) for c in for_ja] == [
        ("Greeting", "ja", "admin"), ("Need more details", "ja", "config"), ("Refund started", "ja", "config"),
        ("Signature", None, "admin")]
    assert all(isinstance(c, Canned) and (c.id is None) == (c.source == "config") for c in for_ja)
    assert len(unknown) == 4 + 3, "a ticket of unknown language is offered everything"


def _now():
    from datetime import UTC, datetime

    return datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


# -- admin pages --------------------------------------------------------------------------------------------

async def test_an_admin_creates_edits_and_deletes_a_canned_response(admin, pool):
    client, csrf = admin
    created = await post(client, "/admin/canned", csrf, {"name": "Delay", "language": "ja",
                                                         "text": "{customer_name} 様\r\n{ref} は確認中です。\r\n"})
    assert created.status_code == 303
    listing = await client.get(created.headers["location"])
    assert notice(listing) == "The canned response was created."
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, name, text, language, created_by FROM canned_responses")
    assert (row["name"], row["text"], row["language"]) == ("Delay", "{customer_name} 様\n{ref} は確認中です。", "ja")
    assert row["created_by"] == await agent_id(pool, "ada@example.com")
    assert f'href="/admin/canned/{row["id"]}">Delay</a>' in listing.text

    saved = await post(client, f"/admin/canned/{row['id']}", csrf, {"name": "Delay notice", "language": "",
                                                                    "text": "{ref}: still checking"})
    assert saved.status_code == 303
    async with pool.acquire() as conn:
        edited = await canned.get(conn, row["id"])
    assert edited == Canned(row["id"], "Delay notice", "{ref}: still checking", None, "admin")

    deleted = await post(client, f"/admin/canned/{row['id']}/delete", csrf)
    assert deleted.status_code == 303
    assert notice(await client.get(deleted.headers["location"])) == "The canned response was deleted."
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM canned_responses") == 0
    assert (await client.get(f"/admin/canned/{row['id']}")).status_code == 404
    assert (await post(client, f"/admin/canned/{row['id']}/delete", csrf)).status_code == 404


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"text": "Your order {order_number} ships soon"}, 422,
     "check the text: unknown placeholder {order_number} (allowed: {agent_name}, {customer_name}, {ref}, {subject})"),
    ({"text": "Prices in {EUR"}, 422, "check the text: bad placeholder syntax"),
    ({"text": "   "}, 422, "`text` is required"),
    ({"name": ""}, 422, "`name` is required"),
    ({"language": "Japanese"}, 422, "is not a language code"),
    ({"name": "refund STARTED", "language": "en"}, 409,
     "router.toml already has a canned response 'Refund started' for en; choose another name"),
])
async def test_a_text_the_reply_box_cannot_fill_is_refused_with_the_reason(admin, pool, form, status, message):
    client, csrf = admin
    values = {"name": "Shipping soon", "language": "en", "text": "Hello {customer_name}", **form}
    before = await snapshot(pool)
    response = await post(client, "/admin/canned", csrf, values)
    assert response.status_code == status
    assert message in alert(response), alert(response)
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", response.text, re.S).group(1)
    assert html.unescape(textarea) == values["text"], "what was typed comes back"
    assert await snapshot(pool) == before


async def test_names_are_unique_per_language(admin, pool):
    client, csrf = admin
    assert (await post(client, "/admin/canned", csrf, {"name": "Hi", "language": "en", "text": "Hi"})).status_code \
        == 303
    assert (await post(client, "/admin/canned", csrf, {"name": "Hi", "language": "ja", "text": "やあ"})).status_code \
        == 303
    assert (await post(client, "/admin/canned", csrf, {"name": "Hi", "language": "", "text": "Hi"})).status_code \
        == 303
    taken = await post(client, "/admin/canned", csrf, {"name": "HI", "language": "en", "text": "Hello"})
    assert taken.status_code == 409 and "already a canned response 'HI' for en" in alert(taken)
    async with pool.acquire() as conn:
        ja = await conn.fetchval("SELECT id FROM canned_responses WHERE language = 'ja'")
    renamed = await post(client, f"/admin/canned/{ja}", csrf, {"name": "hi", "language": "en", "text": "x"})
    assert renamed.status_code == 409
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT language FROM canned_responses WHERE id = $1", ja) == "ja"


async def test_config_responses_are_listed_read_only(admin):
    client, _ = admin
    page = (await client.get("/admin/canned")).text
    config_part = page[page.index('id="config-heading"'):]
    assert config_part.count('<span class="badge source-config">router.toml</span>') == 4
    assert "Refund started" in config_part and "/admin/canned/" not in config_part
