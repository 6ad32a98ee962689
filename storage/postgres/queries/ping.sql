-- A round trip that touches no table: the database answers.
SELECT 1
