-- A failure of the work on owner $3's batch ($1 ids, $2 tokens): back to
-- the queue after a backoff ($6 base, $7 cap, seconds, with jitter), or
-- DEAD after the policy's maxAttempts (else $4) failures; error $5.
UPDATE erasure_tasks t
   SET failures = t.failures + 1,
       state = CASE WHEN t.failures + 1 >=
                      coalesce(nullif((m.policy->>'maxAttempts')::int, 0), $4)
                    THEN 'DEAD' ELSE 'QUEUED' END,
       lease_owner = NULL, lease_expires_at = NULL, last_error = $5,
       updated_at = now(),
       not_before = now() + make_interval(secs => least($7, $6 *
         (0.5 + random() / 2) * power(2, least(t.failures, 10))))
  FROM models m, unnest($1::bigint[], $2::int[]) AS h(id, token)
 WHERE m.id = t.model_id AND h.id = t.id AND h.token = t.attempts
   AND t.state = 'LEASED' AND t.lease_owner = $3
RETURNING t.erasure_id::text, t.state = 'DEAD', t.failures
