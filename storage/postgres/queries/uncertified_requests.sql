-- Up to $1 COMPLETED erasure requests with a DONE task and no certificate
-- yet, oldest completion first.
SELECT e.id::text FROM erasure_requests e
 WHERE e.state = 'COMPLETED'
   AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.request_id = e.id)
   AND EXISTS (SELECT 1 FROM erasure_tasks t
                WHERE t.erasure_id = e.id AND t.state = 'DONE')
 ORDER BY e.completed_at LIMIT $1
