-- Erasure request $1 is CANCELLED by its client and forgets its subject key.
UPDATE erasure_requests
   SET state = 'CANCELLED', state_reason = 'cancelled by client',
       subject_key = NULL, completed_at = now(), updated_at = now()
 WHERE id = $1::uuid
