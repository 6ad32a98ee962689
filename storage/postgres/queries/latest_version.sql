-- The newest live version of model $1.
SELECT version, artifact_sha256, state_sha256 FROM model_versions
 WHERE model_id = $1::uuid AND deleted_at IS NULL
 ORDER BY version DESC LIMIT 1
