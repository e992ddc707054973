-- Full-text indexing claims share the work of several nodes' indexers on
-- PostgreSQL (0180 there); SQLite has one node and one indexer.
SELECT 1;
