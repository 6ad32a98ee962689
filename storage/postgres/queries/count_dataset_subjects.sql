-- The distinct subjects of dataset $1's records.
SELECT count(DISTINCT subject_key) FROM records WHERE dataset_id = $1::uuid
