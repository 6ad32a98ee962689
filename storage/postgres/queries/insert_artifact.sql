-- Artifact with SHA-256 $1 and $2 bytes, its chunks to follow; no row when
-- the digest is stored already (it is left as it is).
INSERT INTO artifacts (sha256, size_bytes) VALUES ($1, $2)
ON CONFLICT (sha256) DO NOTHING
RETURNING 1
