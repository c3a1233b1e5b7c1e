-- Least privilege for the service roles (group roles; logins are granted membership by operators).
-- The ledger may only append to the log; the projector reads the log and owns its tables; readers
-- (dashboards, auditors) only select. Nobody but the owner may UPDATE/DELETE/TRUNCATE the log, and
-- the trigger of 001 refuses even the owner.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vote_ledger_ledger') THEN
        CREATE ROLE vote_ledger_ledger NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vote_ledger_projector') THEN
        CREATE ROLE vote_ledger_projector NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vote_ledger_reader') THEN
        CREATE ROLE vote_ledger_reader NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON ledger_log, ledger_offsets, ledger_parked FROM PUBLIC;
REVOKE ALL ON projection_checkpoints, tally_meetings, tally_buckets, tally_voters FROM PUBLIC;

GRANT SELECT, INSERT ON ledger_log TO vote_ledger_ledger;
GRANT SELECT, INSERT, UPDATE ON ledger_offsets TO vote_ledger_ledger;
GRANT SELECT, INSERT ON ledger_parked TO vote_ledger_ledger;
GRANT USAGE ON SEQUENCE ledger_parked_id_seq TO vote_ledger_ledger;

GRANT SELECT ON ledger_log TO vote_ledger_projector;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, tally_meetings, tally_buckets, tally_voters
    TO vote_ledger_projector;

GRANT SELECT ON ledger_log, ledger_parked, ledger_offsets TO vote_ledger_reader;
GRANT SELECT ON projection_checkpoints, tally_meetings, tally_buckets, tally_voters TO vote_ledger_reader;
