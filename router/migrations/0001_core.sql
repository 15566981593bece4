-- Core schema: customers and their identities, tickets, messages, attachments, agents and teams,
-- the routing log, the outbox and the event stream. Indexes follow the queries in SPEC §3.

CREATE TABLE teams (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE
);

CREATE TABLE agents (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email             text NOT NULL UNIQUE,
    name              text NOT NULL,
    team_id           bigint REFERENCES teams(id),
    role              text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'lead', 'admin')),
    skills            text[] NOT NULL DEFAULT '{}',
    languages         text[] NOT NULL DEFAULT '{}',
    capacity          integer NOT NULL DEFAULT 5 CHECK (capacity >= 0),
    chat_capacity     integer NOT NULL DEFAULT 3 CHECK (chat_capacity >= 0),
    status            text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    load              integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    last_assigned_at  timestamptz,
    password_hash     text,
    token_hash        text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text,
    tier         text NOT NULL DEFAULT 'standard',
    language     text,
    timezone     text,
    merged_into  bigint REFERENCES customers(id),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- kind: 'email' | 'phone' | a platform ('chat', 'telegram', 'line', 'messenger', 'instagram',
-- 'whatsapp', 'x', 'api'); value is normalised by the application (lower-case email, E.164-ish phone).
CREATE TABLE customer_identities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers(id),
    kind         text NOT NULL,
    value        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value)
);
CREATE INDEX customer_identities_customer ON customer_identities (customer_id);

CREATE SEQUENCE ticket_number_seq START WITH 1001;

CREATE TABLE tickets (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number                  bigint NOT NULL UNIQUE DEFAULT nextval('ticket_number_seq'),
    customer_id             bigint NOT NULL REFERENCES customers(id),
    status                  text NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'pending', 'solved', 'closed')),
    priority                text NOT NULL DEFAULT 'normal'
                            CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    channel                 text NOT NULL,
    subject                 text,
    topic                   text,
    skill                   text,
    language                text,
    team_id                 bigint REFERENCES teams(id),
    assignee_id             bigint REFERENCES agents(id),
    previous_ticket_id      bigint REFERENCES tickets(id),
    sla_policy              text,
    first_responded_at      timestamptz,
    last_customer_message_at timestamptz,
    last_agent_reply_at     timestamptz,
    solved_at               timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
-- the customer's thread (threading), the inbox list (keyset on updated_at, id), queues.
CREATE INDEX tickets_customer ON tickets (customer_id, created_at DESC);
CREATE INDEX tickets_list ON tickets (updated_at DESC, id DESC);
CREATE INDEX tickets_status_list ON tickets (status, updated_at DESC, id DESC);
CREATE INDEX tickets_assignee_list ON tickets (assignee_id, status, updated_at DESC, id DESC);
CREATE INDEX tickets_queue ON tickets (team_id, created_at)
    WHERE assignee_id IS NULL AND status IN ('open', 'pending');

CREATE TABLE messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id           bigint NOT NULL REFERENCES tickets(id),
    customer_id         bigint REFERENCES customers(id),
    channel             text NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('in', 'out', 'note', 'system')),
    external_id         text NOT NULL,
    sender_identity_id  bigint REFERENCES customer_identities(id),
    author_agent_id     bigint REFERENCES agents(id),
    sender_name         text,
    subject             text,
    body_text           text NOT NULL DEFAULT '',
    body_html           text,
    quoted_text         text,
    raw_ref             text,
    auto_kind           text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_ticket ON messages (ticket_id, created_at, id);

CREATE TABLE attachments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages(id),
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    content_id    text,
    inline        boolean NOT NULL DEFAULT false
);
CREATE INDEX attachments_message ON attachments (message_id);

CREATE TABLE routing_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint NOT NULL REFERENCES tickets(id),
    action       text NOT NULL,
    agent_id     bigint REFERENCES agents(id),
    actor_id     bigint REFERENCES agents(id),
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_log_ticket ON routing_log (ticket_id, id);

CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    kind             text NOT NULL,
    channel          text NOT NULL,
    ticket_id        bigint REFERENCES tickets(id),
    customer_id      bigint REFERENCES customers(id),
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_customer_kind ON outbox (customer_id, kind, created_at DESC);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint REFERENCES tickets(id),
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_ticket ON events (ticket_id, id);
