-- A page of datasets (columns as in get_dataset.sql), newest first: after
-- cursor ($2 created, microseconds; $3 id) when $1, at most $4 rows.
SELECT d.id::text, d.name, d.description, d.feature_shape::text,
       d.feature_type, d.num_classes,
       floor(extract(epoch from d.created_at) * 1000000)::bigint
  FROM datasets d
 WHERE NOT $1 OR (d.created_at, d.id) < (to_timestamp($2 / 1e6), $3::uuid)
 ORDER BY d.created_at DESC, d.id DESC LIMIT $4
