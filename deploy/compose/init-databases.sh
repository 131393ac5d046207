#!/bin/sh
# Run once by the postgres image when its data volume is new (docker-entrypoint-initdb.d):
# one role and one database per Doudi service, each role owning its own database alone,
# with the passwords compose.yaml passes from .env.
set -eu
for service in enrollment datashare settlement assistance; do
  variable="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="$(printenv "$variable")" || { echo "$variable is not set" >&2; exit 1; }
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
