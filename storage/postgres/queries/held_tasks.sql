-- The rows of a batch ($1 ids, $2 tokens) that owner $3 still holds, locked.
SELECT t.id FROM erasure_tasks t
  JOIN unnest($1::bigint[], $2::int[]) AS h(id, token)
    ON h.id = t.id AND h.token = t.attempts
 WHERE t.state = 'LEASED' AND t.lease_owner = $3
   FOR UPDATE OF t
