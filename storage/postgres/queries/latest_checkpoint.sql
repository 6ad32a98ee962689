-- The largest signed checkpoint of a tree of at most $1 leaves: size, root
-- hash, note, key id, signed (microseconds since the epoch).
SELECT tree_size, root_hash, note, key_id,
       floor(extract(epoch from signed_at) * 1000000)::bigint
  FROM certificate_checkpoints
 WHERE tree_size <= $1
 ORDER BY tree_size DESC LIMIT 1
