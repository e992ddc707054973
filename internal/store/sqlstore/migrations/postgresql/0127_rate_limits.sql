-- Failed-login limits shared by every node (issue 16): one row per
-- (key, member) while it counts, so a limit of "N distinct members per
-- window" is a count of live rows, and an exemption is one row with a
-- deadline. Rows are upserted (INSERT ... ON CONFLICT DO UPDATE) and
-- pruned once expired. SQLite (one node) keeps these in process memory.

CREATE TABLE rate_hit (
    key     TEXT NOT NULL,
    member  TEXT NOT NULL,
    expires TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key, member)
);
CREATE INDEX rate_hit_expires ON rate_hit(expires);
