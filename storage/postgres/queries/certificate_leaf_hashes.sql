-- The hashes of the log's leaves $1 (inclusive) to $2 (exclusive), in order.
SELECT leaf_hash FROM certificate_log
 WHERE leaf_index >= $1 AND leaf_index < $2
 ORDER BY leaf_index
