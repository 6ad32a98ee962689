-- The number of leaves in the certificate log.
SELECT size FROM certificate_log_head
