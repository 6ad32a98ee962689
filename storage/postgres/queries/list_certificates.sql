-- A page of completion certificates (columns as in get_certificate.sql),
-- newest leaf first: naming model $1 ('' for any), issued at or after $2
-- and before $3 (microseconds, 0 for no bound), below leaf $5 when $4, at
-- most $6 rows.
SELECT c.leaf_index, c.request_id::text, c.envelope, l.leaf_hash, c.key_id,
       c.model_ids::text,
       floor(extract(epoch from c.issued_at) * 1000000)::bigint,
       r.client_key_id
  FROM certificates c JOIN certificate_log l USING (leaf_index)
  JOIN erasure_requests r ON r.id = c.request_id
 WHERE c.supersedes IS NULL
   AND ($1 = '' OR c.model_ids @> ARRAY[nullif($1, '')::uuid])
   AND ($2::bigint = 0 OR c.issued_at >= to_timestamp($2::bigint / 1e6))
   AND ($3::bigint = 0 OR c.issued_at < to_timestamp($3::bigint / 1e6))
   AND (NOT $4 OR c.leaf_index < $5)
 ORDER BY c.leaf_index DESC LIMIT $6
