-- Reports (issue 13 §3): business time in SQL, and the indexes a 30-day summary over 1,000,000
-- tickets needs to stay under 500 ms.

-- Business calendars as SQL can read them: one row per calendar and UTC hour (hours since the epoch),
-- with that hour's open segments (epoch seconds) and the business seconds counted from the calendar's
-- origin up to the hour's start. Business time between two instants is then B(b) - B(a), where
-- B(t) = open_before of t's hour + the open seconds of that hour before t: equality joins on plain
-- arithmetic (no time-zone lookup per ticket), no per-ticket loop. `calendar_key` is the calendar's
-- name plus a fingerprint of its definition, so editing a calendar's hours or holidays starts fresh
-- rows instead of reading stale ones. Written only by router/core/store/reports.py, filled on demand
-- for the hours a report needs.
CREATE TABLE report_calendar_hours (
    calendar_key  text NOT NULL,
    hour          bigint NOT NULL,
    open_before   double precision NOT NULL,
    starts        double precision[] NOT NULL,
    ends          double precision[] NOT NULL,
    PRIMARY KEY (calendar_key, hour)
);

-- The report's cohort: tickets created in the period.
CREATE INDEX tickets_created ON tickets (created_at);
-- The backlog (open and pending now) read from the index alone, with the columns the filters use.
CREATE INDEX tickets_backlog ON tickets (created_at) INCLUDE (team_id, channel, assignee_id, status)
    WHERE status IN ('open', 'pending');
-- Hour of day in the customer's timezone: only customers who have one (most do not).
CREATE INDEX customers_timezone ON customers (id) INCLUDE (timezone) WHERE timezone IS NOT NULL;
-- Transfers per ticket: a person moving a ticket to another agent or back to the queue.
CREATE INDEX routing_log_transfers ON routing_log (ticket_id)
    WHERE action = 'transferred' OR (action = 'unassigned' AND actor_id IS NOT NULL);
-- Reopen rate.
CREATE INDEX events_reopened ON events (ticket_id) WHERE kind = 'ticket.reopened';
