-- lethe schema v6: the runtime role (issue 17 item 9).
--
-- The logs' immutability rested on row triggers, which the role that owns
-- the tables can bypass: TRUNCATE fires no row trigger, and an owner may
-- disable triggers or drop them. From this version:
--
--   * TRUNCATE of a log table is refused by a statement trigger, for every
--     role, the owner included;
--   * the servers and workers connect as a login role that is a member of
--     the group role `lethe_runtime` and owns nothing. It may read and write
--     the working tables, but on the logs (audit_log, certificate_log,
--     certificates, certificate_checkpoints) only SELECT and INSERT, and on
--     the log head SELECT and UPDATE (the head's own trigger lets it grow by
--     one); never TRUNCATE, TRIGGER or REFERENCES, and no CREATE on the
--     schema. Only the owner (the role `lethe migrate` runs as) changes the
--     schema, triggers or grants.
--
-- `lethe_runtime` is created here when the migrating role may create roles
-- (roles are per cluster; a second lethe database in the cluster reuses
-- it); otherwise a database administrator creates it first
-- (docs/operations.md, "Database roles"). Every later migration that adds
-- a table must grant it to lethe_runtime too.

CREATE FUNCTION lethe_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();
CREATE TRIGGER certificate_log_no_truncate BEFORE TRUNCATE ON certificate_log
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();
CREATE TRIGGER certificates_no_truncate BEFORE TRUNCATE ON certificates
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();
CREATE TRIGGER certificate_checkpoints_no_truncate
  BEFORE TRUNCATE ON certificate_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();
CREATE TRIGGER certificate_log_head_no_truncate
  BEFORE TRUNCATE ON certificate_log_head
  FOR EACH STATEMENT EXECUTE FUNCTION lethe_refuse_truncate();

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lethe_runtime') THEN
    BEGIN
      CREATE ROLE lethe_runtime NOLOGIN;
    EXCEPTION
      -- Another database's migration created it meanwhile.
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE NOTICE 'lethe: cannot create role lethe_runtime (no CREATEROLE); '
          'a database administrator creates it, then grants as in migration 6';
    END;
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lethe_runtime') THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO lethe_runtime',
                   current_database());
    GRANT USAGE ON SCHEMA public TO lethe_runtime;
    GRANT SELECT, INSERT, UPDATE, DELETE ON
      api_keys, datasets, records, artifacts, models, model_versions,
      erasure_requests, erasure_tasks, model_exclusions
      TO lethe_runtime;
    GRANT SELECT, INSERT ON
      audit_log, certificate_log, certificates, certificate_checkpoints
      TO lethe_runtime;
    GRANT SELECT, UPDATE ON certificate_log_head TO lethe_runtime;
    GRANT SELECT ON schema_migrations TO lethe_runtime;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO lethe_runtime;
  END IF;
END;
$$;
