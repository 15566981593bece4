-- At most once per idempotency key (SPEC §2.10): an item is 'sending' from its lease until its
-- outcome is recorded. One still 'sending' when its lease ends was interrupted (the process died
-- mid-send): it may or may not have been delivered, so it is never sent again by itself; it goes
-- dead with that reason, visible on the ticket, for a person to resend.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'sending', 'sent', 'dead'));
CREATE INDEX outbox_interrupted ON outbox (next_attempt_at) WHERE status = 'sending';
