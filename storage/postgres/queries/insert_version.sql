-- Version $2 of model $1: artifact $3 ($4 bytes), parent $5, produced by
-- $6, engine report $7 (JSON, '' for none), engine state $8 ('' for none).
INSERT INTO model_versions (model_id, version, artifact_sha256, size_bytes,
                            parent_version, produced_by, report, state_sha256)
VALUES ($1::uuid, $2, $3, $4, $5, $6, nullif($7, '')::jsonb,
        nullif($8, '\x'::bytea))
