-- A failed job of model $1 (token $2, owner $3): INVALID with reason $5
-- when permanent ($4) or after the policy's maxAttempts (else $7)
-- failures, else retried after min($8, $6 * 2^failures) seconds.
UPDATE models m
   SET job_failures = m.job_failures + 1,
       state = CASE WHEN $4 OR m.job_failures + 1 >=
                      coalesce(nullif((m.policy->>'maxAttempts')::int, 0), $7)
                    THEN 'INVALID' ELSE m.state END,
       state_reason = $5, lease_owner = NULL, lease_expires_at = NULL,
       job_not_before = now() + make_interval(secs =>
         least($8, $6 * power(2, least(m.job_failures, 10)))),
       updated_at = now()
 WHERE m.id = $1::uuid AND m.job_attempts = $2 AND m.lease_owner = $3
RETURNING m.state = 'INVALID'
