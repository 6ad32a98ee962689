-- Revokes API key $1 (a revoked key keeps its first revocation time);
-- returns a row when the key exists.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
 WHERE key_id = $1
RETURNING 1
