-- Extends owner $3's lease on the batch ($1 ids, $2 tokens) by $4 seconds.
UPDATE erasure_tasks t
   SET lease_expires_at = now() + make_interval(secs => $4)
  FROM unnest($1::bigint[], $2::int[]) AS h(id, token)
 WHERE h.id = t.id AND h.token = t.attempts AND t.state = 'LEASED'
   AND t.lease_owner = $3
RETURNING t.id
