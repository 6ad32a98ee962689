-- Versions of model $1 (every model when $1 = '') whose grace period ended.
UPDATE model_versions SET deleted_at = now()
 WHERE ($1 = '' OR model_id::text = $1) AND delete_after <= now()
   AND deleted_at IS NULL
RETURNING model_id::text, version, artifact_sha256, state_sha256
