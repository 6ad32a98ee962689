-- Locks one READY model that device $2 ('cpu', 'cuda' or '' for any) may
-- run, with due work and no batch in flight, whose queued work fills a
-- batch (policy batchSize, else $1) or waited out the policy's batch
-- window; highest priority, then oldest, first. Returns its id, batch
-- size, SISA shard count (0 without SISA) and recipe seed (decimal text).
SELECT m.id::text,
       coalesce(nullif((m.policy->>'batchSize')::int, 0), $1),
       coalesce((m.policy->'sisa'->>'shards')::int, 0),
       coalesce(m.recipe->>'seed', '0')
  FROM models m
 WHERE m.state = 'READY'
   AND ($2 = '' OR coalesce(m.policy->>'device', 'DEVICE_REQUIREMENT_ANY')
        IN ('DEVICE_REQUIREMENT_ANY',
            CASE WHEN $2 = 'cuda' THEN 'DEVICE_REQUIREMENT_CUDA'
                 ELSE 'DEVICE_REQUIREMENT_CPU' END))
   AND EXISTS (SELECT 1 FROM erasure_tasks q
                WHERE q.model_id = m.id AND q.state = 'QUEUED'
                  AND q.not_before <= now())
   AND NOT EXISTS (SELECT 1 FROM erasure_tasks l
                    WHERE l.model_id = m.id AND l.state = 'LEASED')
   AND ((SELECT count(*) FROM erasure_tasks q
          WHERE q.model_id = m.id AND q.state = 'QUEUED'
            AND q.not_before <= now())
          >= coalesce(nullif((m.policy->>'batchSize')::int, 0), $1)
        OR (SELECT min(q.created_at) FROM erasure_tasks q
             WHERE q.model_id = m.id AND q.state = 'QUEUED')
           <= now() - make_interval(secs =>
                coalesce(nullif((m.policy->>'batchWindowSeconds')::int, 0), 0)))
 ORDER BY (SELECT max(q.priority) FROM erasure_tasks q
            WHERE q.model_id = m.id AND q.state = 'QUEUED') DESC,
          (SELECT min(q.created_at) FROM erasure_tasks q
            WHERE q.model_id = m.id AND q.state = 'QUEUED')
 LIMIT 1
   FOR UPDATE OF m SKIP LOCKED
