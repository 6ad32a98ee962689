-- Artifact $1 (SHA-256): its bytes (NULL when on a filesystem store) and
-- its filesystem location.
SELECT data, location FROM artifacts WHERE sha256 = $1
