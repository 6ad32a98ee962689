-- Requests of $1 (uuid[]) with a DEAD task fail, naming the task's error.
UPDATE erasure_requests e
   SET state = 'FAILED', updated_at = now(), completed_at = now(),
       state_reason = coalesce(
         (SELECT 'task on model ' || t.model_id || ' failed: ' || t.last_error
            FROM erasure_tasks t
           WHERE t.erasure_id = e.id AND t.state = 'DEAD' LIMIT 1),
         'failed')
 WHERE e.id = ANY($1::uuid[]) AND e.state IN ('QUEUED', 'RUNNING')
   AND EXISTS (SELECT 1 FROM erasure_tasks t
                WHERE t.erasure_id = e.id AND t.state = 'DEAD')
