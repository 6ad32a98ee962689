-- Leases model $1's oldest due tasks, up to $2 (`first`), to owner $3 for
-- $4 seconds. A SISA model ($5 shards > 0) is batched per shard: every
-- other due task whose subject lives in a shard `first` retrains anyway
-- joins, up to $6 more. The shard is core::AssignSubject's: the first 8
-- bytes of SHA-256('lethe-sisa-v2:' || recipe seed $7 || ':' || subject
-- key), big-endian, modulo the shard count.
WITH first AS MATERIALIZED (
  SELECT t.id, t.erasure_id FROM erasure_tasks t
   WHERE t.model_id = $1::uuid AND t.state = 'QUEUED'
     AND t.not_before <= now()
     AND NOT EXISTS (SELECT 1 FROM erasure_tasks l
                      WHERE l.model_id = $1::uuid AND l.state = 'LEASED')
   ORDER BY t.priority DESC, t.created_at
   LIMIT $2
     FOR UPDATE OF t SKIP LOCKED),
shards AS MATERIALIZED (
  SELECT DISTINCT
         ((((('x' || substr(encode(sha256(convert_to('lethe-sisa-v2:' || $7::text || ':', 'UTF8')
                                   || e.subject_key), 'hex'), 1, 16))
              ::bit(64)::bigint)::numeric + 18446744073709551616)
           % 18446744073709551616) % $5) AS shard
    FROM first f JOIN erasure_requests e ON e.id = f.erasure_id
   WHERE $5 > 0),
extra AS MATERIALIZED (
  SELECT t.id FROM erasure_tasks t
    JOIN erasure_requests e ON e.id = t.erasure_id
   WHERE $5 > 0 AND t.model_id = $1::uuid AND t.state = 'QUEUED'
     AND t.not_before <= now() AND t.id NOT IN (SELECT id FROM first)
     AND ((((('x' || substr(encode(sha256(convert_to('lethe-sisa-v2:' || $7::text || ':', 'UTF8')
                                   || e.subject_key), 'hex'), 1, 16))
              ::bit(64)::bigint)::numeric + 18446744073709551616)
           % 18446744073709551616) % $5) IN (SELECT shard FROM shards)
   ORDER BY t.priority DESC, t.created_at
   LIMIT $6
     FOR UPDATE OF t SKIP LOCKED),
picked AS (SELECT id FROM first UNION ALL SELECT id FROM extra)
UPDATE erasure_tasks t
   SET state = 'LEASED', attempts = t.attempts + 1, lease_owner = $3,
       lease_expires_at = now() + make_interval(secs => $4),
       updated_at = now()
  FROM picked
 WHERE t.id = picked.id
RETURNING t.id, t.attempts, t.erasure_id::text
