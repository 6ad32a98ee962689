-- Versions of model $1 older than $2 are deleted after $3 seconds.
UPDATE model_versions
   SET delete_after = now() + make_interval(secs => $3)
 WHERE model_id = $1::uuid AND version < $2 AND deleted_at IS NULL
   AND delete_after IS NULL
