-- A new API key $1: SHA-256 $2 of its secret, role $3, description $4,
-- datasets $5 (uuid[]; empty: every dataset).
INSERT INTO api_keys (key_id, secret_sha256, role, description, dataset_ids)
VALUES ($1, $2, $3, $4, $5::uuid[])
