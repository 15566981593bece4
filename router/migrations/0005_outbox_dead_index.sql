-- /metrics counts dead outbox items on every scrape: a partial index holding only those rows keeps
-- the scrape O(dead items), not O(all items ever sent). It costs nothing on the ingest path.
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
