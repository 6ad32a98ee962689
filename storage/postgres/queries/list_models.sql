-- A page of models (columns as in get_model.sql), newest first: of dataset
-- $1 ('' for all), after cursor ($3 created, microseconds; $4 id) when $2,
-- at most $5 rows.
SELECT m.id::text, m.name, m.description, m.dataset_id::text,
       m.architecture::text, m.recipe::text, m.policy::text, m.state,
       m.state_reason,
       (SELECT coalesce(max(version), 0) FROM model_versions v
         WHERE v.model_id = m.id),
       floor(extract(epoch from m.created_at) * 1000000)::bigint,
       floor(extract(epoch from m.updated_at) * 1000000)::bigint
  FROM models m
 WHERE ($1 = '' OR m.dataset_id::text = $1)
   AND (NOT $2 OR (m.created_at, m.id) < (to_timestamp($3 / 1e6), $4::uuid))
 ORDER BY m.created_at DESC, m.id DESC LIMIT $5
