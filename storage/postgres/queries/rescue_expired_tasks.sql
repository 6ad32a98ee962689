-- Expired task leases go back to the queue, or DEAD after $1 lost leases.
-- A lost lease is not a failure of the work; it backs off briefly ($2 base,
-- $3 cap, seconds) in case the model itself kills its workers.
UPDATE erasure_tasks t
   SET lost_leases = t.lost_leases + 1,
       state = CASE WHEN t.lost_leases + 1 >= $1 THEN 'DEAD'
                    ELSE 'QUEUED' END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
       last_error = CASE WHEN t.lost_leases + 1 >= $1
         THEN 'lease lost ' || (t.lost_leases + 1) ||
              ' times (the workers running it died or lost the database); last: '
              || t.lease_owner
         ELSE 'lease of ' || t.lease_owner || ' expired (worker lost)' END,
       not_before = now() + make_interval(secs => least($3, $2 *
         (0.5 + random() / 2) * power(2, least(t.lost_leases, 10))))
 WHERE t.state = 'LEASED' AND t.lease_expires_at < now()
RETURNING t.erasure_id::text
