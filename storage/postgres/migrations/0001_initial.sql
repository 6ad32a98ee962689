-- lethe schema v1. Applied once by `lethe migrate` (or at server start)
-- inside one transaction, under an advisory lock.
--
-- Personal data: no table holds a raw data-subject id. `subject_key` is
-- HMAC-SHA256(server secret, subject_id); it is cleared from a request once
-- the request reaches a terminal state, and records holding it are deleted
-- by the worker that erases the subject.

CREATE TABLE api_keys (
  key_id        text PRIMARY KEY,
  secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
  role          text NOT NULL
                CHECK (role IN ('submitter', 'operator', 'auditor', 'admin')),
  description   text NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz
);

CREATE TABLE datasets (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name          text NOT NULL UNIQUE,
  description   text NOT NULL DEFAULT '',
  feature_shape bigint[] NOT NULL,
  feature_type  text NOT NULL CHECK (feature_type IN ('uint8', 'float32')),
  num_classes   integer NOT NULL CHECK (num_classes >= 2),
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per training or test record.
CREATE TABLE records (
  id          bigserial PRIMARY KEY,
  dataset_id  uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  subject_key bytea NOT NULL CHECK (length(subject_key) = 32),
  label       integer NOT NULL CHECK (label >= 0),
  split       text NOT NULL CHECK (split IN ('train', 'test')),
  features    bytea NOT NULL
);
CREATE INDEX records_by_subject ON records (subject_key, dataset_id);
CREATE INDEX records_by_dataset ON records (dataset_id, split, id);

-- Content-addressed model files. `data` is NULL when the bytes live in a
-- filesystem ArtifactStore (`location` names the file).
CREATE TABLE artifacts (
  sha256     bytea PRIMARY KEY CHECK (length(sha256) = 32),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  data       bytea,
  location   text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((data IS NULL) <> (location IS NULL))
);

CREATE TABLE models (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name         text NOT NULL UNIQUE,
  description  text NOT NULL DEFAULT '',
  dataset_id   uuid NOT NULL REFERENCES datasets (id),
  -- lethe.v1.Architecture / TrainingRecipe / UnlearningPolicy as JSON
  -- (protobuf's canonical JSON mapping).
  architecture jsonb NOT NULL,
  recipe       jsonb NOT NULL,
  policy       jsonb NOT NULL,
  state        text NOT NULL
               CHECK (state IN ('PENDING_VALIDATION', 'TRAINING', 'READY',
                                'INVALID')),
  state_reason text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_by_dataset ON models (dataset_id);

CREATE TABLE model_versions (
  model_id        uuid NOT NULL REFERENCES models (id),
  version         bigint NOT NULL CHECK (version >= 1),
  artifact_sha256 bytea NOT NULL REFERENCES artifacts (sha256),
  size_bytes      bigint NOT NULL,
  parent_version  bigint NOT NULL DEFAULT 0,
  produced_by     text NOT NULL,
  report          jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  deleted_at      timestamptz,
  PRIMARY KEY (model_id, version)
);

CREATE TABLE erasure_requests (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  client_key_id      text NOT NULL,
  idempotency_key    text NOT NULL,
  -- SHA-256 over the canonical request body (subject key, sorted scope,
  -- legal ground and reference): a replay must match it.
  body_sha256        bytea NOT NULL,
  subject_key        bytea CHECK (length(subject_key) = 32),
  subject_commitment bytea NOT NULL CHECK (length(subject_commitment) = 32),
  legal_ground       text NOT NULL,
  legal_reference    text NOT NULL DEFAULT '',
  scope_model_ids    uuid[] NOT NULL DEFAULT '{}',
  state              text NOT NULL
                     CHECK (state IN ('QUEUED', 'RUNNING', 'COMPLETED',
                                      'NOTHING_TO_ERASE', 'FAILED',
                                      'CANCELLED')),
  state_reason       text NOT NULL DEFAULT '',
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  completed_at       timestamptz,
  UNIQUE (client_key_id, idempotency_key)
);
CREATE INDEX erasure_requests_by_time ON erasure_requests (created_at DESC, id DESC);
CREATE INDEX erasure_requests_by_state ON erasure_requests (state, created_at DESC);

-- The queue: one task per (request, model) that workers drain.
CREATE TABLE erasure_tasks (
  id               bigserial PRIMARY KEY,
  erasure_id       uuid NOT NULL REFERENCES erasure_requests (id),
  model_id         uuid NOT NULL REFERENCES models (id),
  state            text NOT NULL
                   CHECK (state IN ('QUEUED', 'LEASED', 'DONE', 'DEAD',
                                    'CANCELLED')),
  priority         integer NOT NULL DEFAULT 0,
  attempts         integer NOT NULL DEFAULT 0,
  not_before       timestamptz NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_expires_at timestamptz,
  last_error       text NOT NULL DEFAULT '',
  result_version   bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (erasure_id, model_id)
);
CREATE INDEX erasure_tasks_ready ON erasure_tasks (priority DESC, created_at)
  WHERE state = 'QUEUED';
CREATE INDEX erasure_tasks_by_model ON erasure_tasks (model_id, state);

-- Append-only: UPDATE and DELETE are refused by the trigger below.
CREATE TABLE audit_log (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL,
  action     text NOT NULL,
  erasure_id uuid,
  model_id   uuid,
  details    jsonb NOT NULL DEFAULT '{}'
);

CREATE FUNCTION lethe_audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION lethe_audit_log_is_append_only();

-- Wake watchers (WatchErasure) and workers on change.
CREATE FUNCTION lethe_notify_erasure_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('lethe_erasure_changed', NEW.id::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER erasure_requests_notify
  AFTER INSERT OR UPDATE ON erasure_requests
  FOR EACH ROW EXECUTE FUNCTION lethe_notify_erasure_change();
