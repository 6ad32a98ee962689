-- The dataset ids of $1 (uuid[]) that name no dataset.
SELECT s::text FROM unnest($1::uuid[]) AS s
 WHERE NOT EXISTS (SELECT 1 FROM datasets d WHERE d.id = s)
