#!/bin/sh
# Runs once, as the superuser, when the Postgres volume is first initialised: two non-superuser
# roles, each owning its own database. Dagster's storage (DAGSTER_PG_*) and the warehouse
# (TAXI_WAREHOUSE_*) never share a login, and neither can touch the other's database.
set -eu
for name in "$DAGSTER_PG_USER" "$DAGSTER_PG_DB" "$TAXI_WAREHOUSE_USER" "$TAXI_WAREHOUSE_DB"; do
  case "$name" in
    ''|*[!a-z0-9_]*) echo "role and database names must be lower-case letters, digits and underscores: '$name'" >&2; exit 1 ;;
  esac
done
if [ "$DAGSTER_PG_DB" = "$TAXI_WAREHOUSE_DB" ] || [ "$DAGSTER_PG_USER" = "$TAXI_WAREHOUSE_USER" ]; then
  echo "Dagster's storage and the warehouse need a database and a role each" >&2
  exit 1
fi
# Passwords go in as psql variables (:'name' quotes them), never into the command line or the log.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v dagster_user="$DAGSTER_PG_USER" -v dagster_pw="$DAGSTER_PG_PASSWORD" -v dagster_db="$DAGSTER_PG_DB" \
  -v wh_user="$TAXI_WAREHOUSE_USER" -v wh_pw="$TAXI_WAREHOUSE_PASSWORD" -v wh_db="$TAXI_WAREHOUSE_DB" <<'SQL'
CREATE ROLE :"dagster_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'dagster_pw';
CREATE ROLE :"wh_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'wh_pw';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE DATABASE :"wh_db" OWNER :"wh_user";
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"wh_db" FROM PUBLIC;
SQL
