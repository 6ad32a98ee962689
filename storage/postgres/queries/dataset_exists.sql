-- A row when dataset $1 exists.
SELECT 1 FROM datasets WHERE id = $1::uuid
