-- The highest version number of model $1, live or deleted (0 if none).
SELECT coalesce(max(version), 0) FROM model_versions WHERE model_id = $1::uuid
