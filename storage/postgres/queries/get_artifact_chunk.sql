-- Chunk $2 of artifact $1.
SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2
