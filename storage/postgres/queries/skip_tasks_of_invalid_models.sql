-- QUEUED tasks of INVALID models (model $1, or every one when $1 = '')
-- become SKIPPED, and the models' versions are scheduled for deletion.
WITH skipped AS (
  UPDATE erasure_tasks t
     SET state = 'SKIPPED', lease_owner = NULL, lease_expires_at = NULL,
         updated_at = now(),
         last_error = 'model ' || m.name || ' is INVALID (' ||
                      m.state_reason ||
                      '): its versions were deleted instead of unlearned'
    FROM models m
   WHERE m.id = t.model_id AND m.state = 'INVALID' AND t.state = 'QUEUED'
     AND ($1 = '' OR m.id::text = $1)
  RETURNING t.erasure_id, t.model_id),
retired AS (
  UPDATE model_versions v SET delete_after = now()
   WHERE v.model_id IN (SELECT model_id FROM skipped)
     AND v.deleted_at IS NULL
     AND (v.delete_after IS NULL OR v.delete_after > now()))
SELECT erasure_id::text, model_id::text FROM skipped
