UPDATE model_versions SET records_removed = $3
 WHERE model_id = $1::uuid AND version = $2
