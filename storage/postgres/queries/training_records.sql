-- A page of the records model $2 may train on, after record id $3: the
-- records of its dataset $1 less the subjects on its exclusion list. The
-- dataset is a parameter (ModelDatasets looked it up) rather than a
-- subquery so that the planner sees it: a page is then a range of
-- records_by_dataset_id (migration 10) in id order, read no further than
-- the page, however the dataset's records interleave with others'.
SELECT r.id, r.subject_key, r.label, r.split = 'test', r.features
  FROM records r
 WHERE r.dataset_id = $1::uuid AND r.id > $3
   AND NOT EXISTS (SELECT 1 FROM model_exclusions x
                    WHERE x.model_id = $2::uuid
                      AND x.subject_key = r.subject_key)
 ORDER BY r.id LIMIT 5000
