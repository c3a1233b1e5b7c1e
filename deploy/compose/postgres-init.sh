#!/usr/bin/env bash
# PostgreSQL's first start in compose (docker-entrypoint-initdb.d, as the superuser, once per volume): the
# project's logins, as `stack up` makes them (services/adapters/postgres/logins.py ensure_logins): the
# NOLOGIN group roles `db migrate` grants to (created here first so the logins can join them), an owner
# that owns the database and runs `db migrate`, and one plain member of exactly one group role per service.
set -euo pipefail

# The passwords are read by psql itself (backticks in \set run the command and keep its output), so none is
# ever on a command line, where `ps` would show it to every local user.
psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set db="$POSTGRES_DB" <<'SQL'
\set owner_pw `tr -d '\r\n' < /run/secrets/pg_owner_password`
\set ledger_pw `tr -d '\r\n' < /run/secrets/pg_ledger_password`
\set projector_pw `tr -d '\r\n' < /run/secrets/pg_projector_password`
\set reader_pw `tr -d '\r\n' < /run/secrets/pg_reader_password`
SET password_encryption = 'scram-sha-256';
CREATE ROLE vote_ledger_ledger NOLOGIN;
CREATE ROLE vote_ledger_projector NOLOGIN;
CREATE ROLE vote_ledger_reader NOLOGIN;
CREATE ROLE vote_ledger_dashboards NOLOGIN;
CREATE ROLE vl_owner LOGIN CREATEDB PASSWORD :'owner_pw';
CREATE ROLE vl_ledger LOGIN PASSWORD :'ledger_pw' IN ROLE vote_ledger_ledger;
CREATE ROLE vl_projector LOGIN PASSWORD :'projector_pw' IN ROLE vote_ledger_projector;
CREATE ROLE vl_reader LOGIN PASSWORD :'reader_pw' IN ROLE vote_ledger_reader;
-- Seatbelts of a reader, as `stack up` sets them (READER_DEFAULTS); the grants are the boundary.
ALTER ROLE vl_reader SET default_transaction_read_only = on;
ALTER ROLE vl_reader SET idle_in_transaction_session_timeout = '60s';
ALTER DATABASE :"db" OWNER TO vl_owner;
SQL
