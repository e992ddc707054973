-- Nothing to do on SQLite: message is WITHOUT ROWID, so the entries of
-- message_modseq (mailbox_id, modseq) already end with the primary key's
-- uid, and ChangesPage's (modseq, uid) ranges are ranges of it. The
-- PostgreSQL migration of this number adds uid to its index.
SELECT 1;
