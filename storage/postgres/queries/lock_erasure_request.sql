-- Erasure request $1's state and client key, locked.
SELECT state, client_key_id FROM erasure_requests
 WHERE id = $1::uuid
   FOR UPDATE
