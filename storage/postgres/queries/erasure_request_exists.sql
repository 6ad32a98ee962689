-- A row when erasure request $1 exists.
SELECT 1 FROM erasure_requests WHERE id = $1::uuid
