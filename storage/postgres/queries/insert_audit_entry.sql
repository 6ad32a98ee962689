-- Appends an audit_log row: actor $1, action $2, erasure $3 and model $4
-- ('' for none), details $5 (JSON, '' for '{}').
INSERT INTO audit_log (actor, action, erasure_id, model_id, details)
VALUES ($1, $2, nullif($3, '')::uuid, nullif($4, '')::uuid,
        coalesce(nullif($5, ''), '{}')::jsonb)
