-- The queue gauges (observability/queue_collector.h), one row per figure:
-- (kind, state or '', value). Requests and tasks per state, the ages of
-- the oldest queued task and open request, retries, and the certificate
-- log's size and its newest checkpoint's. No parameters.
SELECT 'request', lower(state), count(*)::float8
  FROM erasure_requests GROUP BY state
UNION ALL
SELECT 'task', lower(state), count(*)::float8
  FROM erasure_tasks GROUP BY state
UNION ALL
SELECT 'oldest_queued_task', '',
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM erasure_tasks WHERE state = 'QUEUED'
UNION ALL
SELECT 'oldest_open_request', '',
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM erasure_requests WHERE state IN ('QUEUED', 'RUNNING')
UNION ALL
SELECT 'retries', '', coalesce(sum(greatest(attempts - 1, 0)), 0)::float8
  FROM erasure_tasks
UNION ALL
SELECT 'log_entries', '', size::float8 FROM certificate_log_head
UNION ALL
SELECT 'checkpoint_entries', '', coalesce(max(tree_size), 0)::float8
  FROM certificate_checkpoints
