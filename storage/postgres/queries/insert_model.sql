-- A new model named $1: description $2, dataset $3, architecture $4,
-- recipe $5 and policy $6 (JSON), state $7 with reason $8. Returns its id,
-- or nothing when the name is taken.
INSERT INTO models (name, description, dataset_id, architecture, recipe,
                    policy, state, state_reason)
VALUES ($1, $2, $3::uuid, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8)
ON CONFLICT (name) DO NOTHING
RETURNING id::text
