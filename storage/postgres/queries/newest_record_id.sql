-- The newest record id of any dataset (0 when none): an upload's records
-- all come after it (ids come from one sequence, and an upload holds its
-- dataset's lock), so it marks where the upload starts.
SELECT coalesce(max(id), 0) FROM records
