-- A page of the records model $1 may train on, after record id $2: its
-- dataset's records less the subjects on its exclusion list.
SELECT r.id, r.subject_key, r.label, r.split = 'test', r.features
  FROM models m JOIN records r ON r.dataset_id = m.dataset_id
 WHERE m.id = $1::uuid AND r.id > $2
   AND NOT EXISTS (SELECT 1 FROM model_exclusions x
                    WHERE x.model_id = m.id AND x.subject_key = r.subject_key)
 ORDER BY r.id LIMIT 5000
