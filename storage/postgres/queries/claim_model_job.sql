-- Leases the oldest due model job (validation or training) that device $3
-- ('cpu', 'cuda' or '' for any) may run to owner $1 for $2 seconds.
WITH c AS MATERIALIZED (
  SELECT id FROM models
   WHERE state IN ('PENDING_VALIDATION', 'TRAINING')
     AND job_not_before <= now()
     AND (lease_expires_at IS NULL OR lease_expires_at < now())
     AND ($3 = '' OR coalesce(policy->>'device', 'DEVICE_REQUIREMENT_ANY')
          IN ('DEVICE_REQUIREMENT_ANY',
              CASE WHEN $3 = 'cuda' THEN 'DEVICE_REQUIREMENT_CUDA'
                   ELSE 'DEVICE_REQUIREMENT_CPU' END))
   ORDER BY created_at LIMIT 1
     FOR UPDATE SKIP LOCKED)
UPDATE models m
   SET job_attempts = m.job_attempts + 1, lease_owner = $1,
       lease_expires_at = now() + make_interval(secs => $2),
       state_reason = CASE m.state WHEN 'TRAINING' THEN 'training on '
                                   ELSE 'validating on ' END || $1,
       updated_at = now()
  FROM c
 WHERE m.id = c.id
RETURNING m.id::text, m.job_attempts, m.state = 'TRAINING'
