-- Issue 11: the broker's clock on every row, chain v3 over it, and channel keys among the rows a
-- judge is rebuilt from.

-- appended_at: the broker's LogAppendTime of the Kafka record the row came from (the record's
-- timestamp when its timestamp_type is 1; votes.submissions is created with
-- message.timestamp.type=LogAppendTime). The cut-off (R12) must not rest on received_at alone,
-- which the channel writes: with a meeting's broker_grace_s set, a submission the broker appended
-- past the cut-off plus that grace is rejected whatever its received_at says, and key validity
-- (S3) is judged at this time too. NULL when the topic stamps CreateTime (the producer's clock,
-- worth no more than received_at) and for rows with no Kafka source. Rows logged before this
-- migration read NULL: ADD COLUMN without a default stores nothing per row (no rewrite, no UPDATE,
-- so the append-only trigger is untouched).
ALTER TABLE ledger_log ADD COLUMN IF NOT EXISTS appended_at timestamptz;
-- Only a record read from Kafka has a broker time. NOT VALID: every existing row has NULL (the
-- column is new), so there is nothing to scan for; rows from now on are checked.
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_appended_at_has_source;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_appended_at_has_source
    CHECK (appended_at IS NULL OR source_topic IS NOT NULL) NOT VALID;

-- Chain v3 (projections/chain.py) = v2 + appended_at (microseconds, or null), so the broker time a
-- decision rests on cannot be changed without `audit verify` naming the row. As in 010: rows
-- logged before keep their version (v1, v2) and keep verifying; every row appended from now on is
-- v3, and nobody may append under a form that does not cover appended_at (NOT VALID: old rows are
-- not re-checked, an updated one would be). Deploy the new ledger with this migration: an older
-- ledger's v2 rows are refused here, and it parks them as refused_by_database (kept, not logged).
ALTER TABLE ledger_log ALTER COLUMN chain_version SET DEFAULT 3;
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_new_rows_chain_v2;
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_new_rows_chain_v3;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_new_rows_chain_v3 CHECK (chain_version = 3) NOT VALID;

-- The rows a judge is rebuilt from now include channel keys (registrations and revocations: S1,
-- S3), in events.JUDGE_TAGS' order. services/adapters/postgres/log/admin.py names these types
-- literally in its IN list, which must match this predicate for the planner to use the index
-- (without it, a restarting ledger scanned the whole log for its admin rows).
DROP INDEX IF EXISTS ledger_log_admin_rows;
CREATE INDEX IF NOT EXISTS ledger_log_admin_rows ON ledger_log (position)
    WHERE type IN ('meeting.scheduled', 'positions.recorded', 'polls.closed', 'channel.key_registered',
                   'channel.key_revoked', 'proxy.substituted');

-- Grants: no new table or sequence. appended_at falls under the table grants of 007 (the ledger
-- SELECTs and INSERTs it, readers SELECT it, nobody UPDATEs it). The answers relay (services/
-- runtime/answers.py) runs as the ledger, reads rows and parked messages (granted) and takes a
-- session advisory lock (no privilege needed). Restated as a check, as in 010, so a grant made
-- since (or this migration run by a login other than the owner) cannot pass unnoticed.
DO $$
BEGIN
    IF has_column_privilege('vote_ledger_ledger', 'ledger_log', 'appended_at', 'UPDATE')
       OR has_column_privilege('vote_ledger_projector', 'ledger_log', 'appended_at', 'UPDATE')
       OR has_column_privilege('vote_ledger_reader', 'ledger_log', 'appended_at', 'UPDATE') THEN
        RAISE EXCEPTION 'the log must stay append-only: a service role may UPDATE ledger_log.appended_at';
    END IF;
    IF NOT has_column_privilege('vote_ledger_ledger', 'ledger_log', 'appended_at', 'INSERT')
       OR NOT has_column_privilege('vote_ledger_reader', 'ledger_log', 'appended_at', 'SELECT')
       OR NOT has_column_privilege('vote_ledger_projector', 'ledger_log', 'appended_at', 'SELECT') THEN
        RAISE EXCEPTION 'the ledger must append appended_at and readers and the projector must read it';
    END IF;
END
$$;
