-- Admin UI (issue 10): canned responses added in /admin, who owns an agent's settings, and the
-- channel status page's "last message received".

-- Canned responses admins add in the UI; the ones in router.toml ([[canned]]) are not stored here.
-- language NULL: offered whatever the ticket's language. Names are unique per language, ignoring case.
CREATE TABLE canned_responses (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    text        text NOT NULL CHECK (btrim(text) <> ''),
    language    text CHECK (language <> ''),
    created_by  bigint REFERENCES agents(id),
    updated_by  bigint REFERENCES agents(id),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX canned_responses_name ON canned_responses (lower(name), COALESCE(language, ''));

-- Who owns an agent's profile (name, team, role, skills, languages, capacities, token):
-- 'config': router.toml; every start and SIGHUP writes its [[agents]] entry over the row.
-- 'admin': created or edited in /admin; the config sync leaves the row alone, so a reload never
-- undoes an admin's edit. An admin can hand an agent back to router.toml.
ALTER TABLE agents ADD COLUMN managed_by text NOT NULL DEFAULT 'config'
    CHECK (managed_by IN ('config', 'admin'));

-- "Last message received" per channel (/admin channel status): one short index scan per channel
-- instead of reading every message. Partial, so outbound messages, notes and system rows do not pay.
CREATE INDEX messages_inbound_latest ON messages (channel, created_at) WHERE direction = 'in';
