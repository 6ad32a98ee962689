-- Every task of erasure request $1 is CANCELLED.
UPDATE erasure_tasks SET state = 'CANCELLED', updated_at = now()
 WHERE erasure_id = $1::uuid
