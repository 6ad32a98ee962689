-- The certificate of erasure request $1's completion (not a superseding
-- one), in the columns ReadCertificate reads (issued in microseconds since
-- the epoch).
SELECT c.leaf_index, c.request_id::text, c.envelope, l.leaf_hash, c.key_id,
       c.model_ids::text,
       floor(extract(epoch from c.issued_at) * 1000000)::bigint,
       r.client_key_id
  FROM certificates c JOIN certificate_log l USING (leaf_index)
  JOIN erasure_requests r ON r.id = c.request_id
 WHERE c.request_id = $1::uuid AND c.supersedes IS NULL
