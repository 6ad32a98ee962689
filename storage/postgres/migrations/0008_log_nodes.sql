-- lethe schema v8: the certificate log's interior Merkle nodes (issue 17,
-- item 4), so that a root, an inclusion proof or a consistency proof
-- reads O(log n) rows instead of every leaf.
--
-- A row is the hash of a complete, aligned subtree: MTH of the leaves
-- [idx * 2^level, (idx + 1) * 2^level), level >= 1 (level 0 is
-- certificate_log.leaf_hash). Issuing a certificate stores the subtrees its
-- leaf completes, each from its two children, in the issuing transaction;
-- a node that is missing (a log older than this migration) is computed from
-- its leaves when first needed and stored then. Nodes are derived data:
-- append-only like the log, and a wrong one cannot pass for a true one,
-- because no checkpoint is signed unless the stored data proves
-- consistency with the last signed checkpoint (CertificateStore::
-- SignCheckpoint).
CREATE TABLE certificate_log_nodes (
  level smallint NOT NULL CHECK (level BETWEEN 1 AND 62),
  idx   bigint NOT NULL CHECK (idx >= 0),
  hash  bytea NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
);
CREATE TRIGGER certificate_log_nodes_append_only
  BEFORE UPDATE OR DELETE ON certificate_log_nodes
  FOR EACH ROW EXECUTE FUNCTION lethe_refuse_change();
CREATE TRIGGER certificate_log_nodes_no_truncate
  BEFORE TRUNCATE ON certificate_log_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();

DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lethe_runtime') THEN
    GRANT SELECT, INSERT ON certificate_log_nodes TO lethe_runtime;
  END IF;
END;
$$;
