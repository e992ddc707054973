-- IMAP subscriptions are their own list (RFC 3501 6.3.6, RFC 9051 6.3.7,
-- RFC 5258): a name can be subscribed whether or not a mailbox has it,
-- DELETE leaves the subscription (LIST (SUBSCRIBED) then shows the name
-- as \NonExistent), and CREATE does not subscribe. They were a column of
-- mailbox, which tied each subscription to a mailbox's life.

CREATE TABLE subscription (
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (user_email, name)
) WITHOUT ROWID;

INSERT INTO subscription (user_email, name)
SELECT user_email, name FROM mailbox WHERE subscribed;

ALTER TABLE mailbox DROP COLUMN subscribed;
