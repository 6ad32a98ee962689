-- lethe schema v7: submitter keys scoped to datasets (issue 17, item 5).
--
-- A submitter key may name the datasets whose models its requests reach;
-- an empty list (every key made before this version) reaches every
-- dataset. The intake statement (queries/insert_erasure_round.sql) creates
-- tasks only for models of those datasets and deletes orphaned records
-- only there; a request that names a model of another dataset is NOT_FOUND,
-- as if the model did not exist. The ids are not a foreign key: a dataset
-- cannot be deleted through the API, and a stale id only narrows the key.
ALTER TABLE api_keys ADD COLUMN dataset_ids uuid[] NOT NULL DEFAULT '{}';
