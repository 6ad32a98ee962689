-- lethe schema v2: what workers need to run erasure tasks exactly once.
--
-- Leases: a claimed task (or model job) carries its owner, an expiry that
-- the owner renews by heartbeat, and a fencing token (the attempt number).
-- Every state change by a worker names the token it holds, so a worker
-- whose lease expired can never overwrite the result of the next one.

-- Model jobs (validation of a registered artifact, training of a built-in
-- architecture) are leased on the model row itself.
ALTER TABLE models
  ADD COLUMN job_attempts     integer NOT NULL DEFAULT 0,
  ADD COLUMN job_not_before   timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN lease_owner      text,
  ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX models_pending_jobs ON models (created_at)
  WHERE state IN ('PENDING_VALIDATION', 'TRAINING');

-- Engine state that travels with a version (SISA shards and checkpoints,
-- certified-removal state), content-addressed like the model itself; and
-- when a superseded version that still holds erased data must go.
ALTER TABLE model_versions
  ADD COLUMN state_sha256    bytea,
  ADD COLUMN records_removed bigint NOT NULL DEFAULT 0,
  ADD COLUMN delete_after    timestamptz;
CREATE INDEX model_versions_due ON model_versions (delete_after)
  WHERE delete_after IS NOT NULL AND deleted_at IS NULL;

-- A deleted version keeps the digest of what it was (auditors ask), while
-- its artifact row goes with the last live version that references it.
ALTER TABLE model_versions
  DROP CONSTRAINT model_versions_artifact_sha256_fkey;

CREATE INDEX erasure_tasks_leased ON erasure_tasks (lease_expires_at)
  WHERE state = 'LEASED';

-- How each task was absorbed: the method that produced its version ("none"
-- when the model held no training record of the subject) and how many of
-- the subject's records were deleted with it.
ALTER TABLE erasure_tasks
  ADD COLUMN method          text,
  ADD COLUMN records_removed bigint NOT NULL DEFAULT 0;
