-- The models among $1 (uuid[]) that exist, with their datasets.
SELECT id::text, dataset_id::text FROM models WHERE id = ANY ($1::uuid[])
