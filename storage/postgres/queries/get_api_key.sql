-- API key $1: its secret's SHA-256, role, description and whether revoked.
SELECT key_id, secret_sha256, role, description, revoked_at IS NOT NULL
  FROM api_keys
 WHERE key_id = $1
