#!/bin/sh
# Runs once, when the postgres container initialises an empty data
# directory (/docker-entrypoint-initdb.d), as the superuser `postgres`.
# Creates the roles of docs/operations.md, "Database roles":
#   lethe_owner    owns the database and its schema; `lethe migrate` (the
#                  lethe-migrate service) connects as it. Not a superuser.
#   lethe_runtime  the group of migration 6's grants (NOLOGIN).
#   lethe          the servers' and workers' login, a member of
#                  lethe_runtime: it owns nothing, so it can neither change
#                  the logs (SELECT and INSERT only) nor their triggers.
# Passwords come from the secrets init-secrets.sh made.
set -eu
owner_pw=$(cat /run/secrets/postgres-owner-password)
app_pw=$(cat /run/secrets/postgres-password)
psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres \
  -v owner_pw="$owner_pw" -v app_pw="$app_pw" <<'SQL'
CREATE ROLE lethe_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE lethe_runtime NOLOGIN;
CREATE ROLE lethe LOGIN PASSWORD :'app_pw' IN ROLE lethe_runtime;
CREATE DATABASE lethe OWNER lethe_owner;
REVOKE ALL ON DATABASE lethe FROM PUBLIC;
SQL
