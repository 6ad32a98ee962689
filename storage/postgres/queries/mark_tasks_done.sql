-- The batch's tasks ($1 ids, $2 tokens) are DONE at version $3 by $4.
UPDATE erasure_tasks t
   SET state = 'DONE', result_version = $3, method = $4, lease_owner = NULL,
       lease_expires_at = NULL, updated_at = now()
  FROM unnest($1::bigint[], $2::int[]) AS h(id, token)
 WHERE h.id = t.id AND h.token = t.attempts
