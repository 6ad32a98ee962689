-- The erasure requests that model $1's versions $2 to $3 absorbed: one
-- (version, erasure id) row per DONE task.
SELECT result_version, erasure_id::text FROM erasure_tasks
 WHERE model_id = $1::uuid AND state = 'DONE'
   AND result_version BETWEEN $2 AND $3
 ORDER BY erasure_id
