-- The DONE tasks of erasure request $1 by model: model id and name, the
-- version produced, the method, its digest, its parent version and that
-- one's digest, records removed, engine report ('' for none), policy.
SELECT t.model_id::text, m.name, t.result_version,
       coalesce(t.method, v.produced_by), v.artifact_sha256, v.parent_version,
       pv.artifact_sha256, t.records_removed, coalesce(v.report::text, ''),
       m.policy::text
  FROM erasure_tasks t
  JOIN models m ON m.id = t.model_id
  JOIN model_versions v ON v.model_id = t.model_id
                       AND v.version = t.result_version
  LEFT JOIN model_versions pv ON pv.model_id = t.model_id
                             AND pv.version = v.parent_version
 WHERE t.erasure_id = $1::uuid AND t.state = 'DONE'
 ORDER BY t.model_id
