-- PostgreSQL keeps large bodies as body_chunk rows (issue 16); SQLite is
-- one node and keeps them as blob files, so it has nothing to change.
SELECT 1;
