-- A new API key $1: SHA-256 $2 of its secret, role $3, description $4.
INSERT INTO api_keys (key_id, secret_sha256, role, description)
VALUES ($1, $2, $3, $4)
