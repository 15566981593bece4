-- Identity across channels (issue 11 §4, SPEC §2.4): suggested matches for agents to decide, one-time
-- proofs of an address, and a merge log detailed enough to split every merge back exactly.

-- A claimant typed an identity another customer holds verified: maybe the same person. One row per
-- pair and identity, ever: a dismissed suggestion stays dismissed when the claimant writes again.
CREATE TABLE identity_suggestions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    claimant_id   bigint NOT NULL REFERENCES customers(id),
    other_id      bigint NOT NULL REFERENCES customers(id),
    kind          text NOT NULL,
    value         text NOT NULL,
    reason        text NOT NULL,
    confidence    real NOT NULL CHECK (confidence > 0 AND confidence <= 1),
    ticket_id     bigint REFERENCES tickets(id),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'dismissed', 'merged')),
    created_at    timestamptz NOT NULL,
    decided_by    bigint REFERENCES agents(id),
    decided_at    timestamptz,
    decision_note text,
    CHECK (claimant_id <> other_id),
    UNIQUE (claimant_id, other_id, kind, value)
);
CREATE INDEX identity_suggestions_claimant ON identity_suggestions (claimant_id, id DESC);
CREATE INDEX identity_suggestions_other ON identity_suggestions (other_id, id DESC);

-- A one-time code sent to an address a customer claims. Only an HMAC of the code is kept; a proof
-- is spent once (`used_at`) and refuses every guess after `attempts` reaches the limit.
CREATE TABLE identity_proofs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers(id),
    kind         text NOT NULL,
    value        text NOT NULL,
    channel      text NOT NULL,
    code_hash    bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    used_at      timestamptz
);
CREATE INDEX identity_proofs_customer ON identity_proofs (customer_id, created_at DESC);
CREATE INDEX identity_proofs_address ON identity_proofs (kind, value, created_at DESC);

-- Every merge of two customers, who decided it and why, and its undo (split).
CREATE TABLE customer_merges (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    survivor_id      bigint NOT NULL REFERENCES customers(id),
    merged_id        bigint NOT NULL REFERENCES customers(id),
    actor_id         bigint REFERENCES agents(id),  -- NULL: decided by a proof or a message
    reason           text NOT NULL,
    suggestion_id    bigint REFERENCES identity_suggestions(id),
    thread_id        bigint REFERENCES tickets(id),
    -- The survivor's profile fields before it took over what it lacked (name, language, timezone, tier).
    survivor_before  jsonb NOT NULL,
    merged_at        timestamptz NOT NULL,
    undone_at        timestamptz,
    undone_by        bigint REFERENCES agents(id),
    undo_reason      text,
    CHECK (survivor_id <> merged_id)
);
CREATE INDEX customer_merges_survivor ON customer_merges (survivor_id, id DESC);
CREATE INDEX customer_merges_merged ON customer_merges (merged_id, id DESC);

-- The identities the merge moved to the survivor, and the claims it dropped because the other side
-- held the same value (kept whole, so the split puts them back under their own id).
CREATE TABLE customer_merge_identities (
    merge_id      bigint NOT NULL REFERENCES customer_merges(id),
    identity_id   bigint NOT NULL,
    customer_id   bigint NOT NULL REFERENCES customers(id),
    dropped       boolean NOT NULL,
    kind          text NOT NULL,
    value         text NOT NULL,
    verified      boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (merge_id, identity_id)
);

-- Each ticket the merge touched, as it was: the merged customer's tickets (moved), the tickets
-- folded into the thread (closed: status, assignee and the SLA targets the fold stopped), the thread.
CREATE TABLE customer_merge_tickets (
    merge_id         bigint NOT NULL REFERENCES customer_merges(id),
    ticket_id        bigint NOT NULL REFERENCES tickets(id),
    customer_id      bigint NOT NULL REFERENCES customers(id),
    folded           boolean NOT NULL,
    status           text NOT NULL,
    assignee_id      bigint REFERENCES agents(id),
    priority         text NOT NULL,
    sla_policy       text,
    stopped_targets  text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (merge_id, ticket_id)
);

-- Each message the merge moved: its customer, ticket and sender identity before.
CREATE TABLE customer_merge_messages (
    merge_id            bigint NOT NULL REFERENCES customer_merges(id),
    message_id          bigint NOT NULL REFERENCES messages(id),
    customer_id         bigint REFERENCES customers(id),
    ticket_id           bigint NOT NULL REFERENCES tickets(id),
    sender_identity_id  bigint,
    PRIMARY KEY (merge_id, message_id)
);

-- The SLA targets of the merged thread and the folded tickets as they were: a target the thread's
-- new policy dropped comes back on the split, counted from its own start.
CREATE TABLE customer_merge_clocks (
    merge_id    bigint NOT NULL REFERENCES customer_merges(id),
    ticket_id   bigint NOT NULL REFERENCES tickets(id),
    target      text NOT NULL,
    cycle       integer NOT NULL,
    policy      text NOT NULL,
    started_at  timestamptz NOT NULL,
    warn_at     timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    paused_at   timestamptz,
    paused_for  interval NOT NULL,
    met_at      timestamptz,
    warned_at   timestamptz,
    breached_at timestamptz,
    PRIMARY KEY (merge_id, ticket_id, target)
);
