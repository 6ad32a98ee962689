-- Dataset $1 in the columns ReadDataset reads (created in microseconds
-- since the epoch).
SELECT d.id::text, d.name, d.description, d.feature_shape::text,
       d.feature_type, d.num_classes,
       floor(extract(epoch from d.created_at) * 1000000)::bigint
  FROM datasets d
 WHERE d.id = $1::uuid
