-- Model $1's job, if owner $3 still holds it (token $2), locked.
SELECT 1 FROM models
 WHERE id = $1::uuid AND job_attempts = $2 AND lease_owner = $3
   AND state IN ('PENDING_VALIDATION', 'TRAINING')
   FOR UPDATE
