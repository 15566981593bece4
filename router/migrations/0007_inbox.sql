-- Web inbox lists (issue 10): unread markers, search, the "at risk" view.

-- Unread marker: a ticket is unread for an agent when its last customer message is later than the
-- agent's read_at (or the agent never opened it). One row per agent and ticket they opened.
CREATE TABLE ticket_reads (
    agent_id   bigint NOT NULL REFERENCES agents(id),
    ticket_id  bigint NOT NULL REFERENCES tickets(id),
    read_at    timestamptz NOT NULL,
    PRIMARY KEY (agent_id, ticket_id)
);

-- Search: each message's terms (router.core.search: CJK character pairs, lower-cased words, email
-- addresses, phone tails, the ticket reference on a ticket's first message), found with `@>`.
-- pg_trgm cannot look up two-character words such as 請求 or 返金; pairs can. Computed by the
-- application when the message is stored (one statement with the message, no trigger).
-- More statistics: search tells common terms from rare ones by them (router.core.store.inbox).
ALTER TABLE messages ADD COLUMN search_terms text[] NOT NULL DEFAULT '{}';
ALTER TABLE messages ALTER COLUMN search_terms SET STATISTICS 1000;
CREATE INDEX messages_search ON messages USING gin (search_terms);

-- "Mine" and "My team": active tickets by last activity, read in index order (no sort, however many
-- an agent or a team holds), and counted without reading the solved ones that make up most rows.
CREATE INDEX tickets_active_assignee ON tickets (assignee_id, updated_at DESC, id DESC)
    WHERE status IN ('open', 'pending');
CREATE INDEX tickets_active_team ON tickets (team_id, updated_at DESC, id DESC) WHERE status IN ('open', 'pending');

-- "At risk": running SLA clocks past their warning time, soonest due first.
CREATE INDEX sla_targets_running ON sla_targets (warn_at, due_at) WHERE met_at IS NULL AND paused_at IS NULL;
