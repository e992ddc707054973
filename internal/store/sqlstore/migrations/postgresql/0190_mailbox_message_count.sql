-- A mailbox's message count, kept by the statements that add and remove
-- its messages (allocUIDs and deleteMessages in sqlstore, the importer)
-- in the same transaction, so that reading a mailbox no longer counts
-- its rows: every IMAP poll and SELECT read the mailbox, and the COUNT(*)
-- cost 0.6 to 1 ms at 10,000 messages and grew with the mailbox (issue
-- 14). Not a trigger: a per-row trigger would update the mailbox row once
-- per message of a 20,000-message EXPUNGE.
ALTER TABLE mailbox ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
UPDATE mailbox SET message_count = (SELECT COUNT(*) FROM message WHERE message.mailbox_id = mailbox.id);
