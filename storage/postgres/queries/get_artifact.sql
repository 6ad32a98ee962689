-- Artifact $1 (SHA-256): its size, its filesystem location (NULL when the
-- database keeps it) and how many chunks the database holds of it.
SELECT a.size_bytes, a.location,
       (SELECT count(*) FROM artifact_chunks c WHERE c.sha256 = a.sha256)
  FROM artifacts a
 WHERE a.sha256 = $1
