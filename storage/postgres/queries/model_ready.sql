UPDATE models
   SET state = 'READY', state_reason = '', lease_owner = NULL,
       lease_expires_at = NULL, updated_at = now()
 WHERE id = $1::uuid
