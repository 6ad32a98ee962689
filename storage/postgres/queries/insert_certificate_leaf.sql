-- Leaf $1 of the certificate log, with hash $2.
INSERT INTO certificate_log (leaf_index, leaf_hash) VALUES ($1, $2)
