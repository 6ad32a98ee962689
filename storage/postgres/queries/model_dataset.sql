-- Model $1's dataset.
SELECT dataset_id::text FROM models WHERE id = $1::uuid
