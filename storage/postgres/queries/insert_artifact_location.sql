-- Artifact with SHA-256 $1, $2 bytes, kept on the filesystem store at
-- relative path $3; a digest stored already is left as it is.
INSERT INTO artifacts (sha256, size_bytes, location) VALUES ($1, $2, $3)
ON CONFLICT (sha256) DO NOTHING
