-- Identity claims (SPEC §2.4): what a sender only *types* (an email address in a form, a phone
-- number) is stored as an unverified identity of the customer who typed it. It never resolves a
-- sender to another customer: only verified identities do, and each stays unique. A claim becomes
-- verified on proof (a reply from that mailbox, later a one-time code) or by an agent's merge.
ALTER TABLE customer_identities ADD COLUMN verified boolean NOT NULL DEFAULT true;
ALTER TABLE customer_identities DROP CONSTRAINT customer_identities_kind_value_key;
CREATE UNIQUE INDEX customer_identities_verified_value ON customer_identities (kind, value) WHERE verified;
CREATE UNIQUE INDEX customer_identities_per_customer ON customer_identities (customer_id, kind, value);
CREATE INDEX customer_identities_claims ON customer_identities (kind, value) WHERE NOT verified;
