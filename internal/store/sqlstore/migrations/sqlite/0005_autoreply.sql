-- Auto-reply bookkeeping (Mailu: sieve `vacation :days 1`; Dovecot keeps
-- the same in each user's duplicate database). One row per user and
-- sender: when the last reply went out and under which handle (a digest
-- of the reply text, so that an edited reply is sent again, as Dovecot's
-- implicit :handle does). Rows older than a week are pruned; a user's rows
-- go with the user.

CREATE TABLE autoreply_sent (
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    sender     TEXT NOT NULL,
    handle     TEXT NOT NULL,
    sent_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (user_email, sender)
) WITHOUT ROWID;
CREATE INDEX autoreply_sent_at ON autoreply_sent(sent_at);
