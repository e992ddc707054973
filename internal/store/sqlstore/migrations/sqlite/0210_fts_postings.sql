-- PostgreSQL's full-text index becomes posting lists (0210 there);
-- SQLite keeps its contentless FTS5 table, which is that already.
SELECT 1;
