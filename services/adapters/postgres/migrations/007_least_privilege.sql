-- Least privilege, completed. 003 and 005 granted what each service needs; this migration restates
-- the whole grant matrix (undoing any manual grant made since), closes what tables, sequences and
-- functions created later would otherwise leave open, and checks that no service role can bypass
-- grants. Operators give logins a role with e.g. `GRANT vote_ledger_reader TO dashboard;` (README).
--
--   role                   ledger_log      ledger_offsets        ledger_parked    projection tables, shadows
--   vote_ledger_ledger     SELECT, INSERT  SELECT,INSERT,UPDATE  SELECT, INSERT   -
--   vote_ledger_projector  SELECT          -                     -                SELECT,INSERT,UPDATE,DELETE
--   vote_ledger_reader     SELECT          SELECT                SELECT           SELECT (not the shadows)
--
-- Nobody but the owner (the login that runs `db migrate`) may TRUNCATE, ALTER, DROP or grant; the
-- triggers of 001/004 refuse UPDATE/DELETE/TRUNCATE of the log and parked rows even to the owner.

-- The service roles' own attributes come first: SUPERUSER or BYPASSRLS would ignore every grant,
-- CREATEROLE could grant itself anything, and membership of another role (e.g. pg_write_all_data,
-- or another service role) would add that role's privileges to the ones stated here.
DO $$
DECLARE
    offender text;
BEGIN
    SELECT string_agg(r.rolname, ', ') INTO offender FROM pg_roles r
     WHERE r.rolname IN ('vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader')
       AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
            OR EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid));
    IF offender IS NOT NULL THEN
        RAISE EXCEPTION 'service roles must hold only their grants: % %', offender,
            'has a superuser/bypassrls/createrole/createdb/replication attribute or belongs to another role'
            USING HINT = 'ALTER ROLE ... NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION; REVOKE ... FROM the role';
    END IF;
END
$$;

-- The matrix above, restated from scratch for every table that exists now.
REVOKE ALL ON ledger_log, ledger_offsets, ledger_parked, projection_checkpoints, tally_meetings, tally_buckets,
              tally_voters, tally_overvote_rejections, schema_migrations
    FROM PUBLIC, vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader;

GRANT SELECT, INSERT ON ledger_log, ledger_parked TO vote_ledger_ledger;
GRANT SELECT, INSERT, UPDATE ON ledger_offsets TO vote_ledger_ledger;

GRANT SELECT ON ledger_log TO vote_ledger_projector;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON projection_checkpoints, tally_meetings, tally_buckets, tally_voters, tally_overvote_rejections
    TO vote_ledger_projector;

-- Auditors may read everything recorded, including which migrations made the schema.
GRANT SELECT ON ledger_log, ledger_offsets, ledger_parked, projection_checkpoints, tally_meetings, tally_buckets,
                tally_voters, tally_overvote_rejections, schema_migrations
    TO vote_ledger_reader;

-- Whatever other migrations add to the schema: TRUNCATE would bypass the append-only triggers'
-- row checks, and REFERENCES / TRIGGER would let a role hang its own code or locks on our tables.
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public
    FROM PUBLIC, vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader;
REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM PUBLIC, vote_ledger_reader;

-- Sequences: only the ledger draws parked ids (nextval); nobody may setval (UPDATE) one, which
-- would make ids collide or skip. nextval is a write, so readers get no USAGE either.
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;
REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA public FROM vote_ledger_reader, vote_ledger_projector;
REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA public FROM vote_ledger_ledger;
GRANT USAGE ON SEQUENCE ledger_parked_id_seq TO vote_ledger_ledger;

-- Functions are executable by PUBLIC by default; ours only serve triggers, which fire without it.
REVOKE EXECUTE ON FUNCTION ledger_refuse_change() FROM PUBLIC;

-- PostgreSQL before 15 (and clusters upgraded from it) let PUBLIC create tables in schema public,
-- where a service role could plant a table or function shadowing ours for other sessions.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Objects later migrations create (as this same login: default privileges belong to the role that
-- creates the objects) start closed: no function executable by PUBLIC, no table writable by a
-- service until its migration grants it, but every table readable by readers, so an auditor never
-- silently misses a table a migration forgot to grant.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO vote_ledger_reader;

-- Shadow tables for `projections rebuild` (services/runtime/rebuild.py): a meeting is replayed into them
-- and verified while the live tables keep serving, then copied into the live tables in one short
-- transaction. Same names in their own schema, so the projector's writer (tally_store) fills them
-- unchanged under `SET LOCAL search_path`: the shadow rows are exactly what the projector writes.
-- LIKE ... INCLUDING ALL copies the checks and keys, so the same invariants hold there. A migration
-- that changes a live tally table must change its shadow alike; rebuild refuses to run otherwise.
CREATE SCHEMA IF NOT EXISTS tally_shadow;
CREATE TABLE IF NOT EXISTS tally_shadow.tally_meetings (LIKE public.tally_meetings INCLUDING ALL);
CREATE TABLE IF NOT EXISTS tally_shadow.tally_buckets (LIKE public.tally_buckets INCLUDING ALL);
CREATE TABLE IF NOT EXISTS tally_shadow.tally_voters (LIKE public.tally_voters INCLUDING ALL);
CREATE TABLE IF NOT EXISTS tally_shadow.tally_overvote_rejections
    (LIKE public.tally_overvote_rejections INCLUDING ALL);

-- Only the projector (which runs rebuilds) sees the shadows: half-built rows are nobody's tally.
REVOKE ALL ON SCHEMA tally_shadow FROM PUBLIC;
GRANT USAGE ON SCHEMA tally_shadow TO vote_ledger_projector;
REVOKE ALL ON ALL TABLES IN SCHEMA tally_shadow FROM PUBLIC, vote_ledger_ledger, vote_ledger_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tally_shadow TO vote_ledger_projector;

-- The invariants the grants above are for, checked on the resulting catalog so a grant this file
-- could not revoke (e.g. not run by the schema's owner) fails the migration instead of passing.
DO $$
DECLARE
    problem text;
BEGIN
    SELECT string_agg(format('%s: %s', r, what), '; ') INTO problem FROM (
        SELECT r, 'may create in schema public' AS what
          FROM unnest(ARRAY['vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader']) AS r
         WHERE has_schema_privilege(r, 'public', 'CREATE') OR has_schema_privilege(r, 'tally_shadow', 'CREATE')
            OR has_database_privilege(r, current_database(), 'CREATE')
        UNION ALL
        -- Owners may ALTER, DROP and TRUNCATE whatever the grants say.
        SELECT pg_get_userbyid(c.relowner), 'owns ' || c.oid::regclass::text
          FROM pg_class c
         WHERE pg_get_userbyid(c.relowner) IN ('vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader')
        UNION ALL
        SELECT r, 'may change ledger_log rows'
          FROM unnest(ARRAY['vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader']) AS r
         WHERE has_table_privilege(r, 'ledger_log', 'UPDATE, DELETE, TRUNCATE')
    ) AS found;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'least privilege does not hold: %', problem
            USING HINT = 'run `vote-ledger db migrate` as the owner of the database and its schema public';
    END IF;
END
$$;
