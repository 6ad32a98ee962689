-- Erasure request $1 in the columns ReadErasure reads (times in
-- microseconds since the epoch).
SELECT id::text, state, state_reason, subject_commitment, legal_ground,
       legal_reference, scope_model_ids::text, idempotency_key,
       floor(extract(epoch from created_at) * 1000000)::bigint,
       floor(extract(epoch from updated_at) * 1000000)::bigint,
       floor(extract(epoch from completed_at) * 1000000)::bigint,
       client_key_id
  FROM erasure_requests
 WHERE id = $1::uuid
