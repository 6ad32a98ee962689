-- FAILED requests of $1 (uuid[]) with no work left forget their subject key.
UPDATE erasure_requests e SET subject_key = NULL
 WHERE e.id = ANY($1::uuid[]) AND e.state = 'FAILED'
   AND e.subject_key IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM erasure_tasks t
                    WHERE t.erasure_id = e.id
                      AND t.state IN ('QUEUED', 'LEASED'))
