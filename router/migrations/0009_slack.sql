-- Slack for team leads (issue 12): several warning levels per SLA clock, one Slack message per ticket
-- updated in place, burst summaries, the Slack user cache, replay protection and daily digests.

-- Warning levels (`warn_at = [0.5, 0.75, 0.9]`). `warned_at` still marks the first level (set by the
-- first-warning scan); `warn_level` counts the levels fired in the clock's current cycle and
-- `next_warn_at` is when the next one falls due. That time is computed from the clock's `due_at` as it
-- was then (`warn_basis`): a resume or a new policy moves `due_at`, and the monitor computes again.
ALTER TABLE sla_targets ADD COLUMN warn_level smallint NOT NULL DEFAULT 0;
ALTER TABLE sla_targets ADD COLUMN next_warn_at timestamptz;
ALTER TABLE sla_targets ADD COLUMN warn_basis timestamptz;
-- The later-levels scan: only running clocks that warned and did not breach yet (few by nature).
CREATE INDEX sla_targets_level_scan ON sla_targets (next_warn_at)
    WHERE met_at IS NULL AND paused_at IS NULL AND warned_at IS NOT NULL AND breached_at IS NULL;

-- Each level fires at most once per ticket, target and cycle (breaches are level 1).
ALTER TABLE sla_events ADD COLUMN level smallint NOT NULL DEFAULT 1;
ALTER TABLE sla_events DROP CONSTRAINT sla_events_ticket_id_target_cycle_kind_key;
ALTER TABLE sla_events ADD CONSTRAINT sla_events_once UNIQUE (ticket_id, target, cycle, kind, level);

-- One Slack message per ticket. `destination` is the configured channel ("#leads" or an ID; bursts are
-- counted per destination); `channel_id` and `ts` are what Slack answered, which chat.update needs.
-- A process posting the message claims it first (`posting_until`), so two processes never post two.
CREATE TABLE slack_messages (
    ticket_id             bigint PRIMARY KEY REFERENCES tickets(id),
    destination           text NOT NULL,
    channel_id            text,
    ts                    text,
    posted_at             timestamptz,
    posting_until         timestamptz,
    summary_started_at    timestamptz,
    alerting              boolean NOT NULL DEFAULT false,
    resolved_count        integer NOT NULL DEFAULT 0,
    snoozed_until         timestamptz,
    missed_while_snoozed  boolean NOT NULL DEFAULT false,
    activity              jsonb NOT NULL DEFAULT '[]',
    updated_at            timestamptz NOT NULL
);
CREATE INDEX slack_messages_recent_posts ON slack_messages (destination, posted_at);
CREATE INDEX slack_messages_alerting ON slack_messages (ticket_id) WHERE alerting;
CREATE INDEX slack_messages_missed ON slack_messages (snoozed_until) WHERE missed_while_snoozed;
CREATE INDEX slack_messages_summary ON slack_messages (destination, summary_started_at)
    WHERE summary_started_at IS NOT NULL;

-- The burst summary of each destination (one row each, reused by the next burst): the tickets listed are
-- the slack_messages rows with this `summary_started_at`. `version` grows with each ticket added;
-- `rendered_version` is the last one Slack shows.
CREATE TABLE slack_bursts (
    destination       text PRIMARY KEY,
    started_at        timestamptz NOT NULL,
    channel_id        text,
    ts                text,
    posting_until     timestamptz,
    version           integer NOT NULL DEFAULT 0,
    rendered_version  integer NOT NULL DEFAULT 0
);

-- Slack users by email, for assignee mentions (users.lookupByEmail) and for who pressed a button
-- (users.info). `user_id` NULL: no Slack user has this email (remembered for less time).
CREATE TABLE slack_people (
    email       text PRIMARY KEY,
    user_id     text UNIQUE,
    checked_at  timestamptz NOT NULL
);

-- Signatures of the Slack requests served in the last minutes: a replayed request is refused.
CREATE TABLE slack_requests_seen (
    signature  text PRIMARY KEY,
    seen_at    timestamptz NOT NULL
);
CREATE INDEX slack_requests_seen_at ON slack_requests_seen (seen_at);

-- Daily digests queued: one per team and local date, however many processes look at the clock.
CREATE TABLE slack_digests (
    team       text NOT NULL,
    day        date NOT NULL,
    queued_at  timestamptz NOT NULL,
    PRIMARY KEY (team, day)
);
