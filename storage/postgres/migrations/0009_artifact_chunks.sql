-- lethe schema v9: artifacts stored in chunks (issues 17 and 19), so that
-- registering, downloading and loading a model never holds the whole file:
-- a bytea of hundreds of megabytes has to be built and read in one piece,
-- a row of kArtifactChunkBytes (1 MiB) at a time does not.
--
-- An artifact kept by the database is the concatenation of its chunks in
-- `seq` order; `artifacts.size_bytes` is their total and `artifacts.sha256`
-- their digest, checked by every reader. An artifact on a filesystem store
-- keeps its `location` and has no chunks. Chunks go with their artifact
-- (ON DELETE CASCADE).
CREATE TABLE artifact_chunks (
  sha256 bytea NOT NULL REFERENCES artifacts (sha256) ON DELETE CASCADE,
  seq    integer NOT NULL CHECK (seq >= 0),
  data   bytea NOT NULL,
  PRIMARY KEY (sha256, seq)
);

-- Existing artifacts move into chunks of 1 MiB. An empty artifact has none.
INSERT INTO artifact_chunks (sha256, seq, data)
SELECT a.sha256, g.seq, substring(a.data FROM g.seq * 1048576 + 1 FOR 1048576)
  FROM artifacts a,
       generate_series(0, (length(a.data) - 1) / 1048576) AS g(seq)
 WHERE a.data IS NOT NULL AND length(a.data) > 0;

-- Dropping the column drops the CHECK that tied it to `location`.
ALTER TABLE artifacts DROP COLUMN data;

DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lethe_runtime') THEN
    GRANT SELECT, INSERT, DELETE ON artifact_chunks TO lethe_runtime;
  END IF;
END;
$$;
