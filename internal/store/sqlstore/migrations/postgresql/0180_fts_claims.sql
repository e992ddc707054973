-- Full-text indexing claims (issue 16): every node runs an indexer, and
-- without claims each one indexed every new body, the nodes blocking one
-- another on the same index rows. An indexer claims a batch of pending
-- bodies before reading them; a claim held by another indexer and not
-- yet expired keeps the body out of its batch. A node that dies leaves
-- claims that expire. Rows are not tied to body (no foreign key, so a
-- body's deletion does not wait on them); expired ones are swept.

CREATE TABLE body_fts_claim (
    body_id BIGINT PRIMARY KEY,
    owner   TEXT NOT NULL,
    until   TIMESTAMPTZ NOT NULL
);
CREATE INDEX body_fts_claim_until ON body_fts_claim(until);
