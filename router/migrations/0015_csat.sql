-- Customer feedback (issue 13 §1-2): satisfaction surveys after a ticket stays solved, and NPS.

-- One row per survey sent (the reports read this table): `kind` 'csat' (1-5, one per ticket) or
-- 'nps' (0-10, about the company; `ticket_id` is the resolution that prompted it, when known).
-- `score` and `answered_at` stay NULL until the customer answers; a second click changes the score.
-- `agent_id` is who the customer rates: the ticket's assignee when the survey went out.
CREATE TABLE csat_responses (
    id           bigserial PRIMARY KEY,
    ticket_id    bigint REFERENCES tickets(id),
    customer_id  bigint NOT NULL REFERENCES customers(id),
    agent_id     bigint REFERENCES agents(id),
    kind         text NOT NULL CHECK (kind IN ('csat', 'nps')),
    score        smallint,
    comment      text CHECK (length(comment) <= 2000),
    sent_at      timestamptz NOT NULL,
    answered_at  timestamptz,
    CHECK (kind = 'nps' OR ticket_id IS NOT NULL),
    CHECK (score IS NULL OR (kind = 'csat' AND score BETWEEN 1 AND 5) OR (kind = 'nps' AND score BETWEEN 0 AND 10)),
    CHECK ((score IS NULL) = (answered_at IS NULL))
);
CREATE UNIQUE INDEX csat_responses_one_per_ticket ON csat_responses (ticket_id) WHERE kind = 'csat';
-- A customer's surveys, found through their tickets (which follow them through merges): the quiet
-- period, the NPS interval and the ticket page.
CREATE INDEX csat_responses_ticket ON csat_responses (ticket_id, sent_at);
-- Reports by period.
CREATE INDEX csat_responses_sent ON csat_responses (kind, sent_at);

-- The scheduler's decision about each solved ticket, taken once `delay` after it was solved (and
-- still is): 'sent' (a survey went out), or why not. The primary key is the claim: however many
-- processes scan, one decides, and a decided ticket is never looked at again.
CREATE TABLE csat_decisions (
    ticket_id   bigint PRIMARY KEY REFERENCES tickets(id),
    outcome     text NOT NULL CHECK (outcome IN ('csat', 'nps', 'automated', 'merged', 'no_reply', 'quiet',
                                                 'unreachable')),
    decided_at  timestamptz NOT NULL
);

-- The scan: tickets solved within the scheduler's window, oldest first. Partial: open tickets
-- (most writes of the ingest path) are not in it.
CREATE INDEX tickets_solved_at ON tickets (solved_at) WHERE solved_at IS NOT NULL;
