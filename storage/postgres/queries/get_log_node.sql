-- The stored hash of the log's subtree at level $1, index $2 (no row when
-- not stored yet).
SELECT hash FROM certificate_log_nodes WHERE level = $1 AND idx = $2
