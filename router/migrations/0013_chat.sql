-- Live chat (issue 11 §1): one conversation per chat visitor (the id the widget keeps in a first-party
-- cookie, the customer's identity `chat:<visitor_id>`), and its entries, each numbered by the server.
-- `last_seq` is the conversation's counter: an entry takes last_seq + 1 while holding this row's lock,
-- in the transaction that stores it, so entries become visible in the order of their numbers and a
-- widget that has seen number n has seen everything below it (resume from n loses nothing).
CREATE TABLE chat_conversations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    visitor_id    text NOT NULL UNIQUE,
    last_seq      bigint NOT NULL DEFAULT 0,
    ticket_id     bigint REFERENCES tickets(id),   -- the ticket the latest entry belongs to
    claimed_email text,                            -- typed by the visitor: a claim (SPEC §2.4), never proof
    online_until  timestamptz,                     -- a widget is connected (any process) until then
    created_at    timestamptz NOT NULL
);

-- What the widget shows: the customer's messages, agents' replies and acknowledgements. `message_id`
-- is the ticket's message (no foreign key: the conversation keeps what the visitor saw even if the
-- ticket side is reorganised); `client_id` is the widget's id for a customer message, so a retry
-- after a lost confirmation is stored once.
CREATE TABLE chat_entries (
    conversation_id bigint NOT NULL REFERENCES chat_conversations(id),
    seq             bigint NOT NULL,
    author          text NOT NULL CHECK (author IN ('customer', 'agent', 'system')),
    message_id      bigint NOT NULL UNIQUE,
    client_id       text,
    body            text NOT NULL,
    meta            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, client_id)
);
