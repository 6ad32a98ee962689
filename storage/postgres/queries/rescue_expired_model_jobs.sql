-- Expired model-job leases; a model whose jobs lost $1 leases is INVALID.
UPDATE models
   SET job_lost_leases = job_lost_leases + 1,
       state = CASE WHEN job_lost_leases + 1 >= $1 THEN 'INVALID'
                    ELSE state END,
       state_reason = CASE WHEN job_lost_leases + 1 >= $1
         THEN 'job lease lost ' || (job_lost_leases + 1) ||
              ' times (the workers running it died or lost the database)'
         ELSE 'lease of ' || lease_owner || ' expired (worker lost)' END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
 WHERE state IN ('PENDING_VALIDATION', 'TRAINING')
   AND lease_expires_at < now()
RETURNING id::text, state = 'INVALID'
