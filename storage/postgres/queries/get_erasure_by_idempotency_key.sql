-- The request that client key $1 submitted with idempotency key $2: its id
-- and body SHA-256.
SELECT id::text, body_sha256 FROM erasure_requests
 WHERE client_key_id = $1 AND idempotency_key = $2
