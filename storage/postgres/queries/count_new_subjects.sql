-- The subjects of dataset $1's records after id $2 (an upload's, see
-- newest_record_id.sql) that have no record at or before it: the upload's
-- new subjects. It reads the upload's rows (an index range) and probes
-- each of their subjects once, so it costs what the upload holds, not
-- what the dataset holds.
SELECT count(*)
  FROM (SELECT DISTINCT subject_key FROM records
         WHERE dataset_id = $1::uuid AND id > $2) n
 WHERE NOT EXISTS (SELECT 1 FROM records r
                    WHERE r.subject_key = n.subject_key
                      AND r.dataset_id = $1::uuid AND r.id <= $2)
