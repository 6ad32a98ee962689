-- Chunk $2 (from 0) of artifact $1: bytes $3.
INSERT INTO artifact_chunks (sha256, seq, data) VALUES ($1, $2, $3)
