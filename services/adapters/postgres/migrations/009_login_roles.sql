-- The database boundary (issue 9). Until now the services logged in as the superuser and SET ROLE
-- to their group role, so `RESET ROLE; SET session_replication_role = replica; UPDATE ledger_log`
-- succeeded from the ledger's own connection. Now each process logs in as its own login role with
-- a SCRAM password (services/adapters/postgres/logins.py): a plain member of exactly one group role of 003/007
-- (which stay NOLOGIN and keep the grants), so RESET ROLE leads back to a login holding nothing
-- more, and replica mode is refused to anyone but a superuser. The owner login that runs this
-- migration owns the database and is not a superuser either.
--
-- Roles are cluster-wide and this migration runs per database as its owner, who may not create or
-- alter roles; the logins and their session defaults are therefore made by `vote-ledger stack up`
-- (or an administrator, README "Operating it"), and this file does what the database's owner can:

-- 1. Only our roles may connect. PUBLIC holds CONNECT and TEMPORARY on every new database; a login
--    of another application on the same cluster has no business here. Members of the group roles
--    inherit CONNECT; the owner and superusers need no grant.
-- 2. Nobody creates temporary tables: a temporary table is a write, and the one place a reader
--    could otherwise put (and then join against) data of its own choosing. No service uses one
--    (the ledger's batches and the projector's rebuilds write into tables of their own), so
--    TEMPORARY is granted back to nobody.
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader',
                   current_database());
END
$$;

-- 3. 007's default privileges belong to the login that ran it. When the owner changes (a database
--    migrated by the superuser before logins existed, adopted by the owner login on `stack up`),
--    restate them for whoever migrates now, so tables of later migrations stay readable by readers
--    and their functions closed to PUBLIC.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO vote_ledger_reader;

-- 4. The invariants, checked on the catalog as 007 does, now including the logins: a login that is a
--    member of a service role must itself be as plain as the role (a superuser or CREATEROLE member
--    would make the membership meaningless) and a member of that one service role only (a login in
--    both the ledger and the projector role would hold both matrices). No role of ours may create
--    temporary tables, and the reader may write nothing at all.
DO $$
DECLARE
    problem text;
BEGIN
    SELECT string_agg(format('%s: %s', who, what), '; ') INTO problem FROM (
        SELECT l.rolname AS who, 'is a member of a service role but has superuser/createrole/bypassrls/replication'
               AS what
          FROM pg_roles l
         WHERE (l.rolsuper OR l.rolcreaterole OR l.rolbypassrls OR l.rolreplication)
           AND EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                        WHERE m.member = l.oid
                          AND g.rolname IN ('vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader'))
        UNION ALL
        SELECT l.rolname, 'is a member of more than one service role'
          FROM pg_roles l
          JOIN pg_auth_members m ON m.member = l.oid
          JOIN pg_roles g ON g.oid = m.roleid
         WHERE g.rolname IN ('vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader')
         GROUP BY l.rolname HAVING count(*) > 1
        UNION ALL
        SELECT r, 'may create temporary tables'
          FROM unnest(ARRAY['vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader']) AS r
         WHERE has_database_privilege(r, current_database(), 'TEMPORARY')
        UNION ALL
        SELECT 'vote_ledger_reader', 'may write to ' || c.oid::regclass::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'p', 'v', 'm')
           AND has_table_privilege('vote_ledger_reader', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
        UNION ALL
        SELECT 'vote_ledger_reader', 'may use sequence ' || c.oid::regclass::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           -- CASE: has_sequence_privilege raises on a non-sequence, and AND has no order.
           AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('vote_ledger_reader', c.oid, 'USAGE, UPDATE') END
    ) AS found;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'the login boundary does not hold: %', problem
            USING HINT = 'ALTER ROLE ... NOSUPERUSER NOCREATEROLE NOBYPASSRLS NOREPLICATION; REVOKE the extra role; run `vote-ledger db migrate` as the database owner';
    END IF;
END
$$;
