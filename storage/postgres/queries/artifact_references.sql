-- Live versions that refer to artifact $1 (as model or as engine state).
SELECT count(*) FROM model_versions
 WHERE deleted_at IS NULL AND (artifact_sha256 = $1 OR state_sha256 = $1)
