-- A page of erasure requests (columns as in get_erasure_request.sql),
-- newest first: in state $1 ('' for any), with a task on model $2 ('' for
-- any), created at or after $3 and before $4 (microseconds, 0 for no
-- bound), after cursor ($6 created, microseconds; $7 id) when $5, at most
-- $8 rows.
SELECT id::text, state, state_reason, subject_commitment, legal_ground,
       legal_reference, scope_model_ids::text, idempotency_key,
       floor(extract(epoch from created_at) * 1000000)::bigint,
       floor(extract(epoch from updated_at) * 1000000)::bigint,
       floor(extract(epoch from completed_at) * 1000000)::bigint,
       client_key_id
  FROM erasure_requests e
 WHERE ($1 = '' OR e.state = $1)
   AND ($2 = '' OR EXISTS (SELECT 1 FROM erasure_tasks t
                            WHERE t.erasure_id = e.id
                              AND t.model_id::text = $2))
   AND ($3 = 0 OR e.created_at >= to_timestamp($3 / 1e6))
   AND ($4 = 0 OR e.created_at < to_timestamp($4 / 1e6))
   AND (NOT $5 OR (e.created_at, e.id) < (to_timestamp($6 / 1e6), $7::uuid))
 ORDER BY e.created_at DESC, e.id DESC LIMIT $8
