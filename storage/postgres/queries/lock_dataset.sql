-- Locks dataset $1: one append of records at a time.
SELECT 1 FROM datasets WHERE id = $1::uuid FOR UPDATE
