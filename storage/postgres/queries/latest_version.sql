-- The newest live version of model $1, and whether version 1 was trained by
-- a worker (rather than registered with weights).
SELECT v.version, v.artifact_sha256, v.state_sha256,
       EXISTS (SELECT 1 FROM model_versions f
                WHERE f.model_id = $1::uuid AND f.version = 1
                  AND f.produced_by = 'trained')
  FROM model_versions v
 WHERE v.model_id = $1::uuid AND v.deleted_at IS NULL
 ORDER BY v.version DESC LIMIT 1
