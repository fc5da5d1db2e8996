#!/bin/sh
# Runs once, when the Postgres volume is first initialised: the warehouse gets a database of its own,
# beside Dagster's storage database (POSTGRES_DB), owned by the same user.
set -eu
db="${TAXI_WAREHOUSE_DB:-ny_taxi}"
case "$db" in
  ''|*[!A-Za-z0-9_]*) echo "TAXI_WAREHOUSE_DB must be letters, digits and underscores: '$db'" >&2; exit 1 ;;
esac
if [ "$db" = "$POSTGRES_DB" ]; then
  echo "TAXI_WAREHOUSE_DB must differ from the Dagster storage database ($POSTGRES_DB)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
