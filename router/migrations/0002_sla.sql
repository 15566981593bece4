-- SLA clocks: one row per ticket and target. `cycle` counts next-response clocks (one per customer
-- message after an agent reply) so each cycle warns and breaches at most once.
CREATE TABLE sla_targets (
    ticket_id   bigint NOT NULL REFERENCES tickets(id),
    target      text NOT NULL CHECK (target IN ('first_response', 'next_response', 'resolution')),
    cycle       integer NOT NULL DEFAULT 1,
    policy      text NOT NULL,
    started_at  timestamptz NOT NULL,
    warn_at     timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    paused_at   timestamptz,
    paused_for  interval NOT NULL DEFAULT '0',
    met_at      timestamptz,
    warned_at   timestamptz,
    breached_at timestamptz,
    PRIMARY KEY (ticket_id, target)
);
-- The monitor's two scans; partial, so they only hold running clocks that have not fired yet.
CREATE INDEX sla_targets_warn_scan ON sla_targets (warn_at)
    WHERE met_at IS NULL AND paused_at IS NULL AND warned_at IS NULL;
CREATE INDEX sla_targets_due_scan ON sla_targets (due_at)
    WHERE met_at IS NULL AND paused_at IS NULL AND breached_at IS NULL;

CREATE TABLE sla_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets(id),
    target      text NOT NULL,
    cycle       integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('warning', 'breach')),
    due_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticket_id, target, cycle, kind)
);
