-- Web inbox collision warning (issue 10): who has a ticket open and who is typing a reply on it.
-- One row per open page (a browser tab), so two tabs of one agent and several processes never
-- overwrite each other; a page refreshes its row while open and deletes it when it closes. A row
-- whose page vanished without a word (a crash, a lost network) stops counting at `expires_at`.
CREATE TABLE inbox_presence (
    ticket_id     bigint NOT NULL REFERENCES tickets(id),
    agent_id      bigint NOT NULL REFERENCES agents(id),
    page          text NOT NULL,
    typing_until  timestamptz,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, agent_id, page)
);
CREATE INDEX inbox_presence_expiry ON inbox_presence (expires_at);
