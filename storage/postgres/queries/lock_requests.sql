-- Locks the requests $1 (uuid[]) in id order, so that settlers never
-- deadlock.
SELECT 1 FROM erasure_requests WHERE id = ANY($1::uuid[])
 ORDER BY id FOR UPDATE
