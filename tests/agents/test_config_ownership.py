"""Config file or admin UI: an admin's edit is never silently undone by a reload (SIGHUP applies the
config through `Services.apply_config`), agents the config owns still follow it, and an admin can hand
an agent back to the config."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from agents import store as agent_store
from agents.store import AgentIdentity, Profile
from router.config import Config, Settings, demo_config_text, parse_config
from router.core.actions import admin as admin_actions
from router.core.errors import Conflict
from router.services import Services
from tests.conftest import ORIGIN

ADMIN = AgentIdentity(None, "integration", "admin")


def config_with(settings: Settings, *replacements: tuple[str, str], extra: str = "") -> Config:
    """The demo config with some lines replaced (each must exist) and more TOML appended."""
    text = demo_config_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return parse_config(text + extra, settings, source="router.toml")


async def agent(pool: asyncpg.Pool, email: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT a.*, t.name AS team FROM agents a LEFT JOIN teams t ON t.id = a.team_id WHERE email = $1", email)


def services(app) -> Services:
    return app.state.services


async def edit(svc: Services, pool: asyncpg.Pool, email: str, **changes: object) -> None:
    """What the admin page's form does: the agent's whole profile, some fields changed."""
    row = await agent(pool, email)
    profile = Profile(name=row["name"], team_id=row["team_id"], role=row["role"], skills=tuple(row["skills"]),
                      languages=tuple(row["languages"]), capacity=row["capacity"],
                      chat_capacity=row["chat_capacity"])
    await admin_actions.edit_agent(svc.actions(), ADMIN, row["id"], Profile(**{**profile.__dict__, **changes}))


async def test_a_reload_that_would_revert_an_admin_edit_leaves_the_edit(app, pool, settings, caplog):
    svc = services(app)
    await edit(svc, pool, "aiko@example.com", capacity=2, skills=("billing",), name="Aiko T.")
    reloaded = config_with(
        settings,
        ('name = "Aiko Tanaka"\nteam = "support"\nskills = ["billing", "shipping"]\nlanguages = ["ja", "en"]\n'
         'capacity = 5', 'name = "Aiko Tanaka"\nteam = "support"\nskills = ["billing", "shipping"]\n'
         'languages = ["ja", "en"]\ncapacity = 8'),
        ('name = "Ben Carter"\nteam = "support"\nskills = ["technical", "billing"]\nlanguages = ["en"]\ncapacity = 5',
         'name = "Ben Carter"\nteam = "support"\nskills = ["technical", "billing"]\nlanguages = ["en"]\ncapacity = 7'))
    with caplog.at_level(logging.WARNING):
        await svc.apply_config(reloaded)  # what SIGHUP does
    aiko, ben = await agent(pool, "aiko@example.com"), await agent(pool, "ben@example.com")
    assert (aiko["name"], aiko["capacity"], list(aiko["skills"]), aiko["managed_by"]) == (
        "Aiko T.", 2, ["billing"], "admin"), "the reload undid the admin's edit"
    assert (ben["capacity"], ben["managed_by"]) == (7, "config"), "an agent the config owns follows it"
    assert "aiko@example.com" in caplog.text and "managed in the admin UI" in caplog.text
    assert svc.config is reloaded


async def test_handing_an_agent_back_applies_the_config_now_and_on_every_reload(app, pool, settings):
    svc = services(app)
    await edit(svc, pool, "chie@example.com", capacity=1, languages=("ja", "en"))
    chie = await agent(pool, "chie@example.com")
    await admin_actions.hand_back_to_config(svc.actions(), ADMIN, chie["id"])
    back = await agent(pool, "chie@example.com")
    assert (back["capacity"], list(back["languages"]), back["managed_by"]) == (5, ["ja"], "config")
    await svc.apply_config(config_with(settings, ('name = "Chie Sato"', 'name = "Chie Sato-Ito"')))
    assert (await agent(pool, "chie@example.com"))["name"] == "Chie Sato-Ito"


async def test_an_agent_created_in_the_ui_is_not_overwritten_when_the_config_names_them_later(app, pool, settings):
    svc = services(app)
    async with pool.acquire() as conn:
        support = await conn.fetchval("SELECT id FROM teams WHERE name = 'support'")
    dan_id = await admin_actions.create_agent(
        svc.actions(), ADMIN, "dan@example.com",
        Profile(name="Dan Ito", team_id=support, role="agent", skills=("shipping",), languages=("ja",), capacity=4,
                chat_capacity=2), "a long initial password")
    later = config_with(settings, extra='\n[[agents]]\nemail = "dan@example.com"\nname = "Daniel"\nteam = "support"\n'
                                       'capacity = 9\npassword = "demo"\ntoken = "demo-dan"\n')
    await svc.apply_config(later)
    dan = await agent(pool, "dan@example.com")
    assert (dan["id"], dan["name"], dan["capacity"], dan["token_hash"]) == (dan_id, "Dan Ito", 4, None)
    async with pool.acquire() as conn:
        assert await agent_store.sync_from_config(conn, later.teams, later.agents) == ["dan@example.com"]

    await admin_actions.hand_back_to_config(svc.actions(), ADMIN, dan_id)
    back = await agent(pool, "dan@example.com")
    assert (back["name"], back["capacity"], back["managed_by"]) == ("Daniel", 9, "config")
    assert back["token_hash"] == agent_store.token_digest("demo-dan")
    assert back["password_hash"] == dan["password_hash"], "a config password is only ever an initial one"


async def test_hand_back_needs_an_entry_in_the_config(app, pool):
    svc = services(app)
    created = await admin_actions.create_agent(
        svc.actions(), ADMIN, "eve@example.com",
        Profile(name="Eve", team_id=None, role="agent", skills=(), languages=("en",), capacity=1, chat_capacity=1),
        "a long initial password")
    with pytest.raises(Conflict, match="not in built-in demo"):
        await admin_actions.hand_back_to_config(svc.actions(), ADMIN, created)


async def test_deactivation_passwords_and_ui_teams_survive_a_reload(app, pool, settings, client):
    svc = services(app)
    ben = await agent(pool, "ben@example.com")
    await admin_actions.deactivate_agent(svc.actions(), ADMIN, ben["id"])
    chie = await agent(pool, "chie@example.com")
    await admin_actions.reset_password(svc.actions(), ADMIN, chie["id"], "a brand new password")
    team = await admin_actions.create_team(svc.actions(), ADMIN, "Night shift")
    await admin_actions.rename_team(svc.actions(), ADMIN, team, "Nights")

    await svc.apply_config(config_with(settings))
    after = await agent(pool, "ben@example.com")
    assert (after["active"], after["status"]) == (False, "offline"), "the reload reactivated a deactivated agent"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM teams WHERE id = $1", team) == "Nights"
    signed = await client.post("/login", data={"email": "chie@example.com", "password": "a brand new password"},
                               headers={"Origin": ORIGIN})
    assert signed.status_code == 303, "the reload reset the password the admin set"


async def test_a_profile_edit_through_the_json_api_survives_a_reload_too(app, pool, settings, client, auth):
    changed = await client.patch("/api/v1/agents/ben@example.com", json={"capacity": 7, "skills": ["technical"]},
                                 headers=auth)
    assert changed.status_code == 200, changed.text
    status_only = await client.patch("/api/v1/agents/chie@example.com", json={"status": "away"}, headers=auth)
    assert status_only.status_code == 200, status_only.text
    await services(app).apply_config(config_with(settings, ('name = "Chie Sato"', 'name = "Chie S."')))
    ben, chie = await agent(pool, "ben@example.com"), await agent(pool, "chie@example.com")
    assert (ben["capacity"], list(ben["skills"]), ben["managed_by"]) == (7, ["technical"], "admin")
    assert (chie["name"], chie["status"], chie["managed_by"]) == ("Chie S.", "away", "config"), \
        "a status change is not a profile edit: the config still owns Chie"
