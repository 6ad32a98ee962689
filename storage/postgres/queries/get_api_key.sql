-- API key $1: its secret's SHA-256, role, description, whether revoked and
-- its datasets (uuid[] text).
SELECT key_id, secret_sha256, role, description, revoked_at IS NOT NULL,
       dataset_ids::text
  FROM api_keys
 WHERE key_id = $1
