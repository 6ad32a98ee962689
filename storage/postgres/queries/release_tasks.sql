-- Gives owner $3's batch ($1 ids, $2 tokens) back, uncounted.
UPDATE erasure_tasks t
   SET state = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL,
       not_before = now(), updated_at = now()
  FROM unnest($1::bigint[], $2::int[]) AS h(id, token)
 WHERE h.id = t.id AND h.token = t.attempts AND t.state = 'LEASED'
   AND t.lease_owner = $3
