-- lethe schema v5: erased stays erased (issue 14).
--
-- A model never reads an erased subject's records again. A subject's
-- records stay in `records` until every model of their dataset has absorbed
-- the request (another model may still need them as its forget set), so
-- "deleted" cannot be what keeps them out of training. Instead each model
-- has an exclusion list: the records loader (WorkQueue::ForEachRecord)
-- takes a model id, not a dataset id, and reads the dataset minus the
-- model's excluded subject keys, in SQL.
--
-- A row is written
--   * when a version of the model absorbs a request (WorkQueue::Publish,
--     in the publishing transaction; `version` names that version), and
--   * when a model is claimed for training, for every subject whose
--     erasure from the dataset is under way (`version` NULL: the model
--     never trained on the subject).
-- Rows go with the records: once a subject's records are deleted from a
-- dataset, its exclusions on that dataset's models are deleted too (the
-- loader cannot read what is gone, and the subject key is personal data).
-- The subject key is kept here, not only on the request, because a
-- FAILED request clears its subject key while its records stay.
CREATE TABLE model_exclusions (
  model_id    uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  subject_key bytea NOT NULL CHECK (length(subject_key) = 32),
  erasure_id  uuid REFERENCES erasure_requests (id),
  version     bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model_id, subject_key)
);
CREATE INDEX model_exclusions_by_subject ON model_exclusions (subject_key);

-- Requests absorbed before this migration whose records are still there
-- (another model had not absorbed them yet, or the request FAILED).
INSERT INTO model_exclusions (model_id, subject_key, erasure_id, version)
SELECT t.model_id, e.subject_key, e.id, t.result_version
FROM erasure_tasks t JOIN erasure_requests e ON e.id = t.erasure_id
WHERE t.state = 'DONE' AND e.subject_key IS NOT NULL
ON CONFLICT DO NOTHING;

-- Attempts that count: `attempts` stays the claim counter and fencing
-- token; `failures` counts attempts that failed because of the work itself
-- (bounded by the policy's max_attempts), `lost_leases` leases that
-- expired because a worker died or lost the database (bounded by the
-- worker's --max-lost-leases).
ALTER TABLE erasure_tasks
  ADD COLUMN failures    integer NOT NULL DEFAULT 0,
  ADD COLUMN lost_leases integer NOT NULL DEFAULT 0;
UPDATE erasure_tasks
SET failures = CASE WHEN state = 'LEASED' THEN greatest(attempts - 1, 0)
                    ELSE attempts END
WHERE state IN ('QUEUED', 'LEASED');
-- The same split for model jobs (validation, training): `job_attempts`
-- stays the fencing token. An INVALID model's versions are deleted when an
-- erasure reaches it, so a worker killed while validating must not make it
-- INVALID.
ALTER TABLE models
  ADD COLUMN job_failures    integer NOT NULL DEFAULT 0,
  ADD COLUMN job_lost_leases integer NOT NULL DEFAULT 0;
UPDATE models SET job_failures = job_attempts
WHERE state IN ('PENDING_VALIDATION', 'TRAINING') AND lease_owner IS NULL;

-- SKIPPED: the model was INVALID, so it could not be unlearned; its
-- versions are deleted instead, and the request completes for the others.
ALTER TABLE erasure_tasks DROP CONSTRAINT erasure_tasks_state_check;
ALTER TABLE erasure_tasks ADD CONSTRAINT erasure_tasks_state_check
  CHECK (state IN ('QUEUED', 'LEASED', 'DONE', 'DEAD', 'CANCELLED',
                   'SKIPPED'));
