-- The checkpoint signed at tree size $1, in the columns of
-- latest_checkpoint.sql.
SELECT tree_size, root_hash, note, key_id,
       floor(extract(epoch from signed_at) * 1000000)::bigint
  FROM certificate_checkpoints
 WHERE tree_size = $1
