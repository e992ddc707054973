-- IMAP state beyond the messages themselves.
--
-- expunged remembers every expunged UID with the modseq of its expunge, so
-- that QRESYNC (RFC 7162 3.2.5.2, 3.2.10) can answer VANISHED for exactly
-- the UIDs that went after a client's modseq. UIDs are never reused in a
-- mailbox, so (mailbox_id, uid) is a key; the rows go with their mailbox.
--
-- user.last_uidvalidity is the highest UIDVALIDITY of a mailbox the user
-- deleted: a mailbox created later, under any name, gets a higher one
-- (RFC 9051 2.3.1.1), even when the deleted one was the newest.

CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
    uid        BIGINT NOT NULL,
    modseq     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);

ALTER TABLE "user" ADD COLUMN last_uidvalidity BIGINT NOT NULL DEFAULT 0;
