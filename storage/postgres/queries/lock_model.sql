-- Locks model $1: one publication at a time.
SELECT 1 FROM models WHERE id = $1::uuid FOR UPDATE
