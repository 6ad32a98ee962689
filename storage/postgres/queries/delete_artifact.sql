-- Forgets artifact $1 (SHA-256).
DELETE FROM artifacts WHERE sha256 = $1
