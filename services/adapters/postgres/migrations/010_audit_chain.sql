-- Audit chain, v2 (projections/chain.py). Until now a row's hash left out when the ledger recorded
-- it (recorded_at, which `tally --as-of TIME` reads) and where it came from (the Kafka source
-- columns), and parked messages had no hash at all: a superuser could change either unnoticed.

-- Each row says which canonical form its hash covers. Rows logged before this migration keep v1
-- (their hashes stay valid and keep verifying); every row appended from now on is v2, whose
-- canonical bytes add recorded_at and the source topic/partition/offset. ADD COLUMN with a
-- constant default stores nothing per row (no rewrite, no UPDATE, so the append-only trigger is
-- untouched): existing rows read 1; the default then becomes 2 for the rows to come.
ALTER TABLE ledger_log ADD COLUMN IF NOT EXISTS chain_version smallint NOT NULL DEFAULT 1;
ALTER TABLE ledger_log ALTER COLUMN chain_version SET DEFAULT 2;
-- NOT VALID: the old rows stay v1; a new row can only be v2, so nobody appends under the form
-- that does not cover recorded_at (a verifier also refuses v1 after v2 within a meeting's chain).
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_new_rows_chain_v2;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_new_rows_chain_v2 CHECK (chain_version = 2) NOT VALID;

-- The ledger sets recorded_at itself (one instant per batch, from PostgreSQL's clock, never before
-- the previous row's, taken under the append lock) and hashes it. A default would stamp rows with
-- a time no hash covers, so there is none: a writer that does not set it is refused.
ALTER TABLE ledger_log ALTER COLUMN recorded_at DROP DEFAULT;

-- Parked messages get a chain of their own, in id order (ids are drawn under the append lock, so
-- in commit order): prev_id is the previous chained message, hash = SHA-256(its hash ‖ canonical
-- bytes). Messages parked before this migration have neither and are reported as not covered.
ALTER TABLE ledger_parked ADD COLUMN IF NOT EXISTS prev_id bigint;
ALTER TABLE ledger_parked ADD COLUMN IF NOT EXISTS hash bytea;
-- NOT VALID as in 006: every message parked from now on must carry a chain hash.
ALTER TABLE ledger_parked DROP CONSTRAINT IF EXISTS ledger_parked_hash_is_sha256;
ALTER TABLE ledger_parked ADD CONSTRAINT ledger_parked_hash_is_sha256
    CHECK (hash IS NOT NULL AND octet_length(hash) = 32) NOT VALID;
ALTER TABLE ledger_parked DROP CONSTRAINT IF EXISTS ledger_parked_prev_before;
ALTER TABLE ledger_parked ADD CONSTRAINT ledger_parked_prev_before
    CHECK (prev_id IS NULL OR prev_id < id) NOT VALID;
-- parked_at is hashed too, so the ledger sets it (as recorded_at above) and there is no default.
ALTER TABLE ledger_parked ALTER COLUMN parked_at DROP DEFAULT;

-- Grants: no new table or sequence. The new columns fall under the table grants of 007: the
-- ledger may SELECT and INSERT them (it reads the chain heads it continues) but never UPDATE,
-- DELETE or TRUNCATE; readers and auditors SELECT them. Restated here as a check, so a grant made
-- since (or this migration run by a login other than the owner) cannot pass unnoticed.
DO $$
DECLARE
    problem text;
BEGIN
    SELECT string_agg(format('%s may %s %s', r, p, t), '; ') INTO problem
      FROM unnest(ARRAY['vote_ledger_ledger', 'vote_ledger_projector', 'vote_ledger_reader']) AS r,
           unnest(ARRAY['ledger_log', 'ledger_parked']) AS t,
           unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS p
     WHERE has_table_privilege(r, t, p);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'the log and the parked messages must stay append-only: %', problem;
    END IF;
    IF NOT has_table_privilege('vote_ledger_ledger', 'ledger_parked', 'INSERT')
       OR NOT has_column_privilege('vote_ledger_ledger', 'ledger_log', 'chain_version', 'INSERT')
       OR NOT has_column_privilege('vote_ledger_reader', 'ledger_parked', 'hash', 'SELECT') THEN
        RAISE EXCEPTION 'the ledger must append chained rows and readers must read the chains';
    END IF;
END
$$;
