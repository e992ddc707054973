-- \Recent for IMAP4rev1 sessions (RFC 3501 2.3.2): recent_uid is the
-- first UID no session has yet been given as \Recent. The first session
-- to select the mailbox after a message arrives takes it (ClaimRecent);
-- messages already there when this column came are not recent.

ALTER TABLE mailbox ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;
UPDATE mailbox SET recent_uid = uidnext;
