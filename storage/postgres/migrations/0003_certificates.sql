-- Completion certificates and their transparency log (cert/, issue 5).
--
-- The log is an RFC 6962 Merkle tree whose leaves are stored here by index;
-- certificate_log_head holds its size, and every issuer locks that row
-- (SELECT ... FOR UPDATE) before appending, so concurrent issuers append
-- strictly in order with no gaps. Certificates, leaves and checkpoints are
-- append-only: UPDATE and DELETE are refused by triggers, and the head may
-- only grow by one leaf at a time.

CREATE TABLE certificate_log_head (
  id   boolean PRIMARY KEY DEFAULT true CHECK (id),
  size bigint NOT NULL CHECK (size >= 0)
);
INSERT INTO certificate_log_head (id, size) VALUES (true, 0);

CREATE TABLE certificate_log (
  leaf_index  bigint PRIMARY KEY CHECK (leaf_index >= 0),
  -- SHA-256(0x00 || SHA-256(envelope))
  leaf_hash   bytea NOT NULL CHECK (length(leaf_hash) = 32),
  appended_at timestamptz NOT NULL DEFAULT now()
);

-- One row per log entry. The completion certificate of a request has
-- supersedes NULL (at most one per request); a later change of status is a
-- new entry whose supersedes names the leaf it amends.
CREATE TABLE certificates (
  leaf_index bigint PRIMARY KEY REFERENCES certificate_log (leaf_index),
  request_id uuid NOT NULL REFERENCES erasure_requests (id),
  envelope   bytea NOT NULL,
  key_id     text NOT NULL,
  model_ids  uuid[] NOT NULL,
  issued_at  timestamptz NOT NULL DEFAULT now(),
  supersedes bigint REFERENCES certificate_log (leaf_index)
);
CREATE UNIQUE INDEX certificates_one_completion_per_request
  ON certificates (request_id) WHERE supersedes IS NULL;
CREATE INDEX certificates_by_model ON certificates USING gin (model_ids);
CREATE INDEX certificates_by_time ON certificates (issued_at DESC, leaf_index DESC);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), at most one
-- per tree size: the tree is append-only, so all are mutually consistent.
CREATE TABLE certificate_checkpoints (
  tree_size bigint PRIMARY KEY CHECK (tree_size >= 0),
  root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
  note      text NOT NULL,
  key_id    text NOT NULL,
  signed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION lethe_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER certificate_log_append_only
  BEFORE UPDATE OR DELETE ON certificate_log
  FOR EACH ROW EXECUTE FUNCTION lethe_refuse_change();
CREATE TRIGGER certificates_append_only
  BEFORE UPDATE OR DELETE ON certificates
  FOR EACH ROW EXECUTE FUNCTION lethe_refuse_change();
CREATE TRIGGER certificate_checkpoints_append_only
  BEFORE UPDATE OR DELETE ON certificate_checkpoints
  FOR EACH ROW EXECUTE FUNCTION lethe_refuse_change();

-- A leaf goes exactly at the end of the log, and the head grows by one.
CREATE FUNCTION lethe_log_append_in_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.leaf_index <> (SELECT size FROM certificate_log_head) THEN
    RAISE EXCEPTION 'certificate_log: leaf % is not at the end of the log',
      NEW.leaf_index;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER certificate_log_in_order
  BEFORE INSERT ON certificate_log
  FOR EACH ROW EXECUTE FUNCTION lethe_log_append_in_order();

CREATE FUNCTION lethe_log_head_grows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.size <> OLD.size + 1 THEN
    RAISE EXCEPTION 'certificate_log_head only grows by one leaf at a time';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER certificate_log_head_grows
  BEFORE UPDATE OR DELETE ON certificate_log_head
  FOR EACH ROW EXECUTE FUNCTION lethe_log_head_grows();
