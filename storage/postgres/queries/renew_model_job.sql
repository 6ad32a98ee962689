-- Extends owner $4's lease on model $1's job (token $2) by $3 seconds.
UPDATE models SET lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = $1::uuid AND job_attempts = $2 AND lease_owner = $4
RETURNING 1
