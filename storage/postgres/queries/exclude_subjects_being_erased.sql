-- Puts on model $1's exclusion list every subject whose erasure from the
-- model's dataset is under way: absorbed by another model of the dataset
-- already, or with a request still running there.
INSERT INTO model_exclusions (model_id, subject_key, erasure_id)
SELECT DISTINCT ON (k.subject_key) $1::uuid, k.subject_key, k.erasure_id
  FROM (SELECT x.subject_key, x.erasure_id
          FROM model_exclusions x
          JOIN models o ON o.id = x.model_id
          JOIN models me ON me.dataset_id = o.dataset_id
         WHERE me.id = $1::uuid AND x.model_id <> $1::uuid
        UNION ALL
        SELECT e.subject_key, e.id
          FROM erasure_requests e
          JOIN erasure_tasks t ON t.erasure_id = e.id
          JOIN models o ON o.id = t.model_id
          JOIN models me ON me.dataset_id = o.dataset_id
         WHERE me.id = $1::uuid AND e.subject_key IS NOT NULL
           AND e.state IN ('QUEUED', 'RUNNING')) AS k
ON CONFLICT (model_id, subject_key) DO NOTHING
