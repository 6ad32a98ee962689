-- One statement writes a round of requests whose (client key, idempotency
-- key) pairs are distinct: the requests (state decided up front from the
-- records lookup), their tasks, their audit entries and the workers'
-- NOTIFY. Inputs are parallel text arrays: $1 client key id, $2
-- idempotency key, $3 body SHA-256 (hex), $4 subject key (hex), $5
-- commitment (hex), $6 legal ground, $7 legal reference, $8 scope (a uuid[]
-- literal), $9 the submitting key's datasets (a uuid[] literal; empty:
-- every dataset). Tasks go only to models of those datasets, and orphaned
-- records are deleted only there. It returns one 'r' row per request created (ord, then the
-- erasure columns PgErasureStore reads), one 't' row per task created (in
-- the same columns, see ReadNewTask), and an 'n' row when it notified.
-- Requests whose key exists already are skipped by ON CONFLICT and not
-- returned. Rows are inserted in key order, so two batches that share keys
-- cannot deadlock.
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                       $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::text[])
    WITH ORDINALITY AS t(in_client, in_key, in_body, in_subject,
                         in_commitment, in_ground, in_reference, in_scope,
                         in_datasets, ord)
), typed AS (
  SELECT ord, in_client, in_key, decode(in_body, 'hex') AS in_body,
         decode(in_subject, 'hex') AS in_subject,
         decode(in_commitment, 'hex') AS in_commitment, in_ground,
         in_reference, in_scope::uuid[] AS in_scope,
         in_datasets::uuid[] AS in_datasets
    FROM input
), orphans AS (
  -- Records of the subject in datasets that no model uses: an unscoped
  -- request deletes them at once (nothing to unlearn first).
  SELECT t.ord, count(*) AS n
    FROM typed t JOIN records r ON r.subject_key = t.in_subject
   WHERE cardinality(t.in_scope) = 0
     AND (cardinality(t.in_datasets) = 0 OR r.dataset_id = ANY (t.in_datasets))
     AND NOT EXISTS (SELECT 1 FROM models m WHERE m.dataset_id = r.dataset_id)
   GROUP BY t.ord
), matches AS (
  SELECT t.ord, m.id AS model_id
    FROM typed t
    JOIN models m ON (cardinality(t.in_scope) = 0 OR m.id = ANY (t.in_scope))
                 AND (cardinality(t.in_datasets) = 0
                      OR m.dataset_id = ANY (t.in_datasets))
   WHERE EXISTS (SELECT 1 FROM records r
                  WHERE r.subject_key = t.in_subject
                    AND r.dataset_id = m.dataset_id)
), decided AS (
  SELECT t.*,
         EXISTS (SELECT 1 FROM matches x WHERE x.ord = t.ord) AS has_tasks,
         coalesce((SELECT o.n FROM orphans o WHERE o.ord = t.ord), 0)
           AS orphaned
    FROM typed t
), ins AS (
  INSERT INTO erasure_requests (client_key_id, idempotency_key, body_sha256,
                                subject_key, subject_commitment, legal_ground,
                                legal_reference, scope_model_ids, state,
                                state_reason, completed_at)
  SELECT in_client, in_key, in_body,
         CASE WHEN has_tasks THEN in_subject END, in_commitment, in_ground,
         in_reference, in_scope,
         CASE WHEN has_tasks THEN 'QUEUED' ELSE 'NOTHING_TO_ERASE' END,
         CASE WHEN has_tasks THEN ''
              WHEN orphaned > 0 THEN
                'no model in scope was trained on records of this subject; its '
                || orphaned || ' records in datasets with no model were deleted'
              ELSE 'no model in scope was trained on records of this subject'
         END,
         CASE WHEN has_tasks THEN NULL ELSE now() END
    FROM decided ORDER BY in_client, in_key
  ON CONFLICT (client_key_id, idempotency_key) DO NOTHING
  RETURNING *
), new_tasks AS (
  INSERT INTO erasure_tasks (erasure_id, model_id, state)
  SELECT ins.id, x.model_id, 'QUEUED'
    FROM ins
    JOIN typed t ON t.in_client = ins.client_key_id
                AND t.in_key = ins.idempotency_key
    JOIN matches x ON x.ord = t.ord
  RETURNING *
), purged AS (
  DELETE FROM records r
   USING ins JOIN typed t ON t.in_client = ins.client_key_id
                         AND t.in_key = ins.idempotency_key
   WHERE cardinality(t.in_scope) = 0 AND r.subject_key = t.in_subject
     AND (cardinality(t.in_datasets) = 0 OR r.dataset_id = ANY (t.in_datasets))
     AND NOT EXISTS (SELECT 1 FROM models m WHERE m.dataset_id = r.dataset_id)
), notify AS (
  SELECT pg_notify('lethe_tasks', '')
    FROM (SELECT 1 FROM new_tasks LIMIT 1) AS any_task
), audit AS (
  INSERT INTO audit_log (actor, action, erasure_id, details)
  SELECT ins.client_key_id, 'erasure.submitted', ins.id,
         jsonb_build_object(
           'tasks', (SELECT count(*) FROM matches x WHERE x.ord = t.ord),
           'records_deleted',
           coalesce((SELECT o.n FROM orphans o WHERE o.ord = t.ord), 0))
    FROM ins JOIN typed t ON t.in_client = ins.client_key_id
                         AND t.in_key = ins.idempotency_key
)
SELECT 'r', t.ord, id::text, state, state_reason, subject_commitment,
       legal_ground, legal_reference, scope_model_ids::text, idempotency_key,
       floor(extract(epoch from created_at) * 1000000)::bigint,
       floor(extract(epoch from updated_at) * 1000000)::bigint,
       floor(extract(epoch from completed_at) * 1000000)::bigint,
       client_key_id
  FROM ins JOIN typed t ON t.in_client = ins.client_key_id
                       AND t.in_key = ins.idempotency_key
UNION ALL
SELECT 't', NULL, erasure_id::text, model_id::text, state, NULL,
       attempts::text, last_error, result_version::text, NULL,
       floor(extract(epoch from updated_at) * 1000000)::bigint, NULL, NULL,
       NULL
  FROM new_tasks
UNION ALL
SELECT 'n', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL
  FROM notify
