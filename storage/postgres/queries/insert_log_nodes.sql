-- Subtree hashes of the log: levels $1 (smallint[]), indexes $2 (bigint[])
-- and hashes $3 (text[] of hex), in parallel. One stored already (by a
-- concurrent reader that computed it too) is kept: a subtree of an
-- append-only log has one hash.
INSERT INTO certificate_log_nodes (level, idx, hash)
SELECT l, i, decode(h, 'hex')
  FROM unnest($1::smallint[], $2::bigint[], $3::text[]) AS t(l, i, h)
ON CONFLICT (level, idx) DO NOTHING
