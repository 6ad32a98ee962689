-- The requests $1 (uuid[]) of a claimed batch are RUNNING; their keys.
UPDATE erasure_requests
   SET state = CASE WHEN state = 'QUEUED' THEN 'RUNNING' ELSE state END,
       updated_at = now()
 WHERE id = ANY($1::uuid[])
RETURNING id::text, subject_key
