-- The hash $3 of the log's subtree at level $1, index $2. One stored
-- already (by a concurrent reader that computed it too) is kept: a subtree
-- of an append-only log has one hash.
INSERT INTO certificate_log_nodes (level, idx, hash)
VALUES ($1, $2, $3)
ON CONFLICT (level, idx) DO NOTHING
