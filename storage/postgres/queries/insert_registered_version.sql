-- Version 1 of model $1, registered with its artifact: SHA-256 $2, $3
-- bytes.
INSERT INTO model_versions (model_id, version, artifact_sha256, size_bytes,
                            produced_by)
VALUES ($1::uuid, 1, $2, $3, 'registered')
