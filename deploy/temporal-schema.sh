#!/bin/sh
# One-shot (temporalio/admin-tools): bring Temporal's databases to this server version's schema.
# Safe on every `docker compose up`: setup-schema keeps a newer recorded version, update-schema
# applies only the missing steps. The databases themselves come from postgres-init.sql.
# Reads DB_PORT, POSTGRES_SEEDS, POSTGRES_USER and SQL_PASSWORD from the environment.
set -eu

schema=/etc/temporal/schema/postgresql/v12
sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

sql_tool --db temporal setup-schema -v 0.0
sql_tool --db temporal update-schema -d "$schema/temporal/versioned"
sql_tool --db temporal_visibility setup-schema -v 0.0
sql_tool --db temporal_visibility update-schema -d "$schema/visibility/versioned"
echo "Temporal schema is up to date"
