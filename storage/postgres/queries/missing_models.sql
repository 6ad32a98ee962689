-- The model ids of $1 (uuid[]) that name no model.
SELECT s::text FROM unnest($1::uuid[]) AS s
 WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.id = s)
