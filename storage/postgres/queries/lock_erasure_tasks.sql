-- The state and attempts of erasure request $1's tasks, locked.
SELECT state, attempts FROM erasure_tasks
 WHERE erasure_id = $1::uuid
   FOR UPDATE
