-- The log's size, locked: serialises appenders until the transaction ends.
SELECT size FROM certificate_log_head FOR UPDATE
