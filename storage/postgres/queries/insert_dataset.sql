-- A new dataset named $1: description $2, feature shape $3 (a bigint[]
-- literal), feature type $4, $5 classes. Returns its id, or nothing when
-- the name is taken.
INSERT INTO datasets (name, description, feature_shape, feature_type,
                      num_classes)
VALUES ($1, $2, $3::bigint[], $4, $5)
ON CONFLICT (name) DO NOTHING
RETURNING id::text
