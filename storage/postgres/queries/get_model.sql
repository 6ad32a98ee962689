-- Model $1 in the columns ReadModel reads, with its latest version number
-- (0 if none) and times in microseconds since the epoch.
SELECT m.id::text, m.name, m.description, m.dataset_id::text,
       m.architecture::text, m.recipe::text, m.policy::text, m.state,
       m.state_reason,
       (SELECT coalesce(max(version), 0) FROM model_versions v
         WHERE v.model_id = m.id),
       floor(extract(epoch from m.created_at) * 1000000)::bigint,
       floor(extract(epoch from m.updated_at) * 1000000)::bigint
  FROM models m
 WHERE m.id = $1::uuid
