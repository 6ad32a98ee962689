-- Artifact with SHA-256 $1, $2 bytes, kept in the database as $3; a
-- digest stored already is left as it is.
INSERT INTO artifacts (sha256, size_bytes, data) VALUES ($1, $2, $3)
ON CONFLICT (sha256) DO NOTHING
