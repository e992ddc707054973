-- Idempotent delivery. A delivery that did not learn whether its COMMIT
-- went through (the connection broke while the reply was on its way)
-- runs again with the same keys: a message whose key is already here was
-- stored by the first run and is skipped, so it is stored exactly once.
-- An APPEND records where it put the message (mailbox_id, uid), so that
-- its re-run can answer with the UID (RFC 4315 APPENDUID). Rows are only
-- needed for such a retry and are pruned after a day.

CREATE TABLE delivery_key (
    id         TEXT PRIMARY KEY,
    mailbox_id BIGINT,
    uid        BIGINT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX delivery_key_created ON delivery_key(created_at);
