-- IMAP polls page through a mailbox's changes in (modseq, uid) order
-- (ChangesPage, issue 19): with uid in the index, each page is one range
-- of it, where a page after a STORE 1:* (every row at one modseq) would
-- otherwise filter and sort every row left at that modseq. The index
-- serves every query message_modseq served.
CREATE INDEX message_modseq_uid ON message(mailbox_id, modseq, uid);
DROP INDEX message_modseq;
