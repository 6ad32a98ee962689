-- The tasks of erasure requests $1 (uuid[]) by request, then model:
-- request id, model id, state, attempts, last error, result version,
-- updated (microseconds since the epoch).
SELECT erasure_id::text, model_id::text, state, attempts, last_error,
       result_version,
       floor(extract(epoch from updated_at) * 1000000)::bigint
  FROM erasure_tasks
 WHERE erasure_id = ANY($1::uuid[])
 ORDER BY erasure_id, model_id
