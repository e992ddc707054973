-- The messages flagged \Deleted, by mailbox: EXPUNGE and CLOSE look for
-- them (deletedUIDs in sqlstore), and without this index read every
-- message of the mailbox to find a few (6 % of Petrel's CPU under
-- imaptest's stress load; a scan of 100,000 rows per EXPUNGE at 100,000
-- messages). Partial, so it holds only those messages, and covering.
-- The predicate must stay the very text of deletedUIDsQuery's: a store
-- uses a partial index only for a query that names its predicate.
CREATE INDEX message_deleted ON message(mailbox_id, uid, flags) WHERE LOWER(flags) LIKE '%\deleted%' ESCAPE '!';
