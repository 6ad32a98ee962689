-- lethe schema v10: a model's training records are read in pages in id
-- order (training_records.sql), and each page must cost its own size, not
-- the dataset's (issue 19). The index on (dataset_id, split, id) cannot
-- give one dataset's records in id order, so the planner read and sorted
-- every record after the page's start for each page: 0.9 s a page at 1M
-- records, quadratic over a load. (dataset_id, id) gives the order, for a
-- small dataset among large ones too (2 ms a page where walking the
-- primary key took 578 ms); no query needs split in an index (counts per
-- split scan the dataset's records anyway), so it replaces the old index
-- rather than adding to every upload's cost.
--
-- Building it holds a lock that blocks writes to `records` while it runs:
-- 0.8 s for a million 784-byte records on the benchmark machine (2
-- cores); run the migration at a quiet time on a large table.
CREATE INDEX records_by_dataset_id ON records (dataset_id, id);
DROP INDEX records_by_dataset;
