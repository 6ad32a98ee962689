-- Requests of $1 (uuid[]) with no task left to run complete, their subject
-- key cleared, saying which models were skipped.
UPDATE erasure_requests e
   SET state = 'COMPLETED', completed_at = now(), updated_at = now(),
       subject_key = NULL,
       state_reason = coalesce(
         (SELECT string_agg(t.last_error, '; ' ORDER BY t.model_id)
            FROM erasure_tasks t
           WHERE t.erasure_id = e.id AND t.state = 'SKIPPED'), '')
 WHERE e.id = ANY($1::uuid[]) AND e.state IN ('QUEUED', 'RUNNING')
   AND NOT EXISTS (SELECT 1 FROM erasure_tasks t
                    WHERE t.erasure_id = e.id
                      AND t.state NOT IN ('DONE', 'SKIPPED'))
RETURNING e.id::text
