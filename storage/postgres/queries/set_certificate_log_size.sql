-- The certificate log now has $1 leaves.
UPDATE certificate_log_head SET size = $1
