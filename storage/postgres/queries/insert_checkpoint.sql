-- Checkpoint of tree size $1: root hash $2, signed note $3 by key $4. One
-- signed first for the same size (by a replica) is kept instead.
INSERT INTO certificate_checkpoints (tree_size, root_hash, note, key_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tree_size) DO NOTHING
