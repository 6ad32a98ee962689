-- Erasure request $1 if COMPLETED: legal ground, legal reference, subject
-- commitment, created and completed (microseconds since the epoch).
SELECT legal_ground, legal_reference, subject_commitment,
       floor(extract(epoch from created_at) * 1000000)::bigint,
       floor(extract(epoch from completed_at) * 1000000)::bigint
  FROM erasure_requests
 WHERE id = $1::uuid AND state = 'COMPLETED'
