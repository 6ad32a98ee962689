-- Dataset $1's train records, test records and distinct subjects.
SELECT count(*) FILTER (WHERE split = 'train'),
       count(*) FILTER (WHERE split = 'test'), count(DISTINCT subject_key)
  FROM records
 WHERE dataset_id = $1::uuid
