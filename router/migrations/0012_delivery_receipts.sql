-- Delivery receipts (issue 11): what a platform reported, after accepting a message we sent, about
-- its fate on the customer's device: delivered, read, or failed (WhatsApp `statuses` webhooks). One
-- row per message and status, so a platform's retry of the same webhook is recorded once.
CREATE TABLE delivery_receipts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id           bigint NOT NULL REFERENCES messages(id),
    status               text NOT NULL CHECK (status IN ('delivered', 'read', 'failed')),
    platform_message_id  text NOT NULL,
    error                text,
    occurred_at          timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL,
    UNIQUE (message_id, status)
);
