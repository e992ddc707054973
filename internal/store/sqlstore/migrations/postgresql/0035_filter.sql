-- Built-in spam checks (internal/filter), shared by every node.
--
-- Greylisting: one row per triplet (client network, sender, recipient),
-- keyed by a hash of the triplet. Rows not seen for the allow window
-- (35 days, postgrey's max-age) are deleted.
CREATE TABLE greylist (
    key        TEXT PRIMARY KEY,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    passed     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX greylist_last_seen ON greylist(last_seen);

-- Per-user Bayesian classifier, trained by the user's own Junk moves:
-- token counts and the number of messages trained. A user's rows go with
-- the user.
CREATE TABLE junk_token (
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    token      TEXT NOT NULL,
    spam       BIGINT NOT NULL DEFAULT 0,
    ham        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_email, token)
);

CREATE TABLE junk_total (
    user_email TEXT PRIMARY KEY REFERENCES "user"(email) ON DELETE CASCADE,
    spam       BIGINT NOT NULL DEFAULT 0,
    ham        BIGINT NOT NULL DEFAULT 0
);
