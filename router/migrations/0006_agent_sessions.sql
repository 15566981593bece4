-- Web inbox sign-in (issue 10): server-side sessions, so that deactivating an agent or changing a
-- password ends their sessions at once. The cookie holds a random id; only its SHA-256 is stored.
CREATE TABLE agent_sessions (
    id_hash       text PRIMARY KEY,
    agent_id      bigint NOT NULL REFERENCES agents(id),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    address       text,
    user_agent    text
);
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);

-- Failed sign-ins per key ('account:<email>' typed, whether or not it exists, and 'address:<ip>'),
-- shared by every process so that N processes do not give an attacker N times the attempts.
CREATE TABLE login_failures (
    key           text PRIMARY KEY,
    failures      integer NOT NULL,
    window_start  timestamptz NOT NULL,
    locked_until  timestamptz
);

-- An agent who is deactivated keeps their history but can no longer sign in or use a token.
ALTER TABLE agents ADD COLUMN active boolean NOT NULL DEFAULT true;
-- Sessions created before this instant are no longer valid (a password change ends them).
ALTER TABLE agents ADD COLUMN password_changed_at timestamptz;
-- Preferences for the inbox: UI language and timezone (NULL: Accept-Language / service timezone).
ALTER TABLE agents ADD COLUMN ui_language text;
ALTER TABLE agents ADD COLUMN timezone text;
