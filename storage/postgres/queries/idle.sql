-- True when device $1 ('cpu', 'cuda' or '' for any) has nothing left to
-- claim now or later: no leased task, no queued task of a model it may run
-- that is or may become READY, and no model job it may run.
SELECT NOT EXISTS (
         SELECT 1 FROM erasure_tasks t JOIN models m ON m.id = t.model_id
          WHERE (t.state = 'LEASED'
                 OR (t.state = 'QUEUED'
                     AND m.state IN ('READY', 'PENDING_VALIDATION',
                                     'TRAINING')))
            AND ($1 = '' OR coalesce(m.policy->>'device',
                                     'DEVICE_REQUIREMENT_ANY')
                 IN ('DEVICE_REQUIREMENT_ANY',
                     CASE WHEN $1 = 'cuda' THEN 'DEVICE_REQUIREMENT_CUDA'
                          ELSE 'DEVICE_REQUIREMENT_CPU' END)))
   AND NOT EXISTS (
         SELECT 1 FROM models m
          WHERE m.state IN ('PENDING_VALIDATION', 'TRAINING')
            AND ($1 = '' OR coalesce(m.policy->>'device',
                                     'DEVICE_REQUIREMENT_ANY')
                 IN ('DEVICE_REQUIREMENT_ANY',
                     CASE WHEN $1 = 'cuda' THEN 'DEVICE_REQUIREMENT_CUDA'
                          ELSE 'DEVICE_REQUIREMENT_CPU' END)))
