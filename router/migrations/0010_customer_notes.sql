-- Notes agents keep about a customer (issue 10, the ticket page's customer panel): what every
-- colleague should know before answering them ("prefers phone", "VIP contract until March").
-- Internal only; a customer never sees them. A merged customer's notes stay on their own row and
-- are read through `customers.merged_into`, so undoing a merge needs nothing moved back.
CREATE TABLE customer_notes (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES customers(id),
    author_agent_id  bigint REFERENCES agents(id),
    body             text NOT NULL CHECK (length(body) BETWEEN 1 AND 5000),
    created_at       timestamptz NOT NULL
);
CREATE INDEX customer_notes_customer ON customer_notes (customer_id, created_at DESC, id DESC);
-- The notes (and nothing else) of the records merged into a customer are found through this index;
-- partial, so it holds only the few merged rows.
CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;
