-- For the requests $1 (uuid[]): a subject's records go from every dataset
-- on which each task of its request is DONE or SKIPPED, and with them the
-- subject's exclusions on that dataset's models. The count is credited to
-- the task of model $2 when it is on that dataset, else to one of the
-- others. Returns the records removed from dataset $3.
WITH settled AS MATERIALIZED (
  SELECT e.id AS erasure_id, e.subject_key, m.dataset_id
    FROM erasure_requests e
    JOIN erasure_tasks t ON t.erasure_id = e.id
    JOIN models m ON m.id = t.model_id
   WHERE e.id = ANY($1::uuid[]) AND e.subject_key IS NOT NULL
     AND e.state IN ('QUEUED', 'RUNNING')
   GROUP BY e.id, e.subject_key, m.dataset_id
  HAVING bool_and(t.state IN ('DONE', 'SKIPPED'))),
gone AS (
  DELETE FROM records r USING settled s
   WHERE r.dataset_id = s.dataset_id AND r.subject_key = s.subject_key
  RETURNING s.erasure_id, s.dataset_id),
unlisted AS (
  DELETE FROM model_exclusions x USING settled s, models m
   WHERE m.id = x.model_id AND m.dataset_id = s.dataset_id
     AND x.subject_key = s.subject_key),
per AS (
  SELECT erasure_id, dataset_id, count(*) AS n FROM gone
   GROUP BY erasure_id, dataset_id),
credited AS (
  UPDATE erasure_tasks t SET records_removed = t.records_removed + per.n
    FROM per
   WHERE t.id = (SELECT c.id FROM erasure_tasks c
                   JOIN models cm ON cm.id = c.model_id
                  WHERE c.erasure_id = per.erasure_id
                    AND cm.dataset_id = per.dataset_id
                  ORDER BY c.model_id::text = $2 DESC, c.state = 'DONE' DESC,
                           c.id
                  LIMIT 1))
SELECT coalesce(sum(n) FILTER (WHERE dataset_id::text = $3), 0) FROM per
