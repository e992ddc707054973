-- The header fields IMAP SEARCH looks up most (SUBJECT, FROM, TO, CC, BCC,
-- HEADER Message-ID), decoded and case-folded per body at delivery and
-- APPEND, so that a search reads one short column instead of every header
-- block. A body is immutable and shared by its copies, so the row is per
-- body and goes with it. NULL is a value longer than the store keeps
-- (searched in the header instead). Bodies stored before this table
-- existed have no row: IMAP SEARCH computes and stores it on first use
-- (docs/search.md). Full-text search (BODY/TEXT) gets its own table
-- beside this one.
CREATE TABLE body_search (
    body_id    INTEGER PRIMARY KEY REFERENCES body(id) ON DELETE CASCADE,
    subject    TEXT,
    from_addr  TEXT,
    to_addr    TEXT,
    cc_addr    TEXT,
    bcc_addr   TEXT,
    message_id TEXT
);
