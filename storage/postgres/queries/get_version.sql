-- Version $2 of model $1 (its newest when $2 = 0), live or deleted, in the
-- columns of list_versions.sql.
SELECT v.model_id::text, v.version, v.artifact_sha256, v.size_bytes,
       v.parent_version, v.produced_by,
       floor(extract(epoch from v.created_at) * 1000000)::bigint,
       floor(extract(epoch from v.deleted_at) * 1000000)::bigint,
       coalesce(v.report::text, ''), v.records_removed
  FROM model_versions v
 WHERE v.model_id = $1::uuid AND ($2 = 0 OR v.version = $2)
 ORDER BY v.version DESC LIMIT 1
