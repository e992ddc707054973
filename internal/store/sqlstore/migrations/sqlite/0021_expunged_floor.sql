-- The expunged table is pruned (PruneExpunged keeps the newest rows of
-- each mailbox). expunged_floor is the highest modseq whose rows may be
-- gone: a client that last synchronised below it cannot be told exactly
-- which UIDs went, so ChangesSince then reports every UID below UIDNEXT
-- that is not in the mailbox (RFC 7162 3.2.5.2 allows VANISHED (EARLIER)
-- to name UIDs the client never saw), never a wrong, shorter list.

ALTER TABLE mailbox ADD COLUMN expunged_floor INTEGER NOT NULL DEFAULT 0;
