-- The certificate at leaf $1: of erasure request $2, DSSE envelope $3
-- signed by key $4, naming models $5 (a uuid[] literal).
INSERT INTO certificates (leaf_index, request_id, envelope, key_id,
                          model_ids)
VALUES ($1, $2::uuid, $3, $4, $5::uuid[])
