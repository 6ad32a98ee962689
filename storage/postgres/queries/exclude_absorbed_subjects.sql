-- The subjects of requests $2 (uuid[]) join model $1's exclusion list at
-- version $3.
INSERT INTO model_exclusions (model_id, subject_key, erasure_id, version)
SELECT $1::uuid, e.subject_key, e.id, $3 FROM erasure_requests e
 WHERE e.id = ANY($2::uuid[]) AND e.subject_key IS NOT NULL
ON CONFLICT (model_id, subject_key) DO NOTHING
