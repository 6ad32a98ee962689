-- The next version of model $1: artifact $2 ($3 bytes), produced by $4,
-- report $5 (JSON, '' for none), engine state $6 ('' for none).
INSERT INTO model_versions (model_id, version, artifact_sha256, size_bytes,
                            produced_by, report, state_sha256)
VALUES ($1::uuid,
        (SELECT coalesce(max(version), 0) + 1 FROM model_versions
          WHERE model_id = $1::uuid),
        $2, $3, $4, nullif($5, '')::jsonb, nullif($6, '\x'::bytea))
