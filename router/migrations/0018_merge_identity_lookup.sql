-- Where to reach a customer (`customers.address_on`) skips typed addresses another customer brought in
-- by a merge still in force: that check looks merged identities up by identity, on every reply and ack.
CREATE INDEX customer_merge_identities_identity ON customer_merge_identities (identity_id);
