-- The append-only log of every submission and meeting administration event (R19), the Kafka
-- offsets committed with it, and the parked (undecodable) messages.

CREATE TABLE IF NOT EXISTS ledger_log (
    -- Global position in commit order, gapless: appends are serialised by a row lock on
    -- ledger_append_lock held until commit (013_append_lock.sql; services/adapters/postgres/log/append.py),
    -- so a reader that has seen position p has seen every position below p, and no later commit can
    -- fill a hole.
    position          bigint      PRIMARY KEY CHECK (position > 0),
    meeting_id        text        NOT NULL,
    event_id          text        NOT NULL,
    type              text        NOT NULL,
    control_number    text,
    channel           text,
    executed_at       timestamptz,
    received_at       timestamptz,
    decision          text        NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    reason            text,
    -- The message exactly as received (valid JSON): evidence, including fields newer than us.
    payload           json        NOT NULL,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    recorded_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- R18: one event_id applies once, however often it is delivered.
    CONSTRAINT ledger_log_event_id_key UNIQUE (event_id),
    -- A rejection always says why; an acceptance never carries a reason.
    CONSTRAINT ledger_log_reason_iff_rejected CHECK ((decision = 'rejected') = (reason IS NOT NULL))
);

-- Per-meeting replay reads a meeting's rows in log order.
CREATE INDEX IF NOT EXISTS ledger_log_meeting_position ON ledger_log (meeting_id, position);
-- Restarting processes reload meeting state (admin events, substitutions) without a full scan.
CREATE INDEX IF NOT EXISTS ledger_log_admin_rows ON ledger_log (position)
    WHERE type IN ('meeting.scheduled', 'positions.recorded', 'polls.closed', 'proxy.substituted');

-- R19: no row of the log is ever updated or deleted. The trigger holds even for roles that own
-- the table; privileges (below) refuse it earlier for the service roles.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the ledger only appends; a correction is a new event';
END
$$;

DROP TRIGGER IF EXISTS ledger_log_append_only ON ledger_log;
CREATE TRIGGER ledger_log_append_only BEFORE UPDATE OR DELETE ON ledger_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
DROP TRIGGER IF EXISTS ledger_log_no_truncate ON ledger_log;
CREATE TRIGGER ledger_log_no_truncate BEFORE TRUNCATE ON ledger_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Kafka offsets consumed, committed in the same transaction as the rows they produced, so a crash
-- or rebalance resumes exactly after the last committed batch: nothing lost, nothing doubled.
CREATE TABLE IF NOT EXISTS ledger_offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL CHECK (partition >= 0),
    next_offset    bigint  NOT NULL CHECK (next_offset >= 0),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages that could not be decoded into an event: kept verbatim with the decoder's reason.
CREATE TABLE IF NOT EXISTS ledger_parked (
    id               bigserial PRIMARY KEY,
    source_topic     text    NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint  NOT NULL,
    key              bytea,
    value            bytea,
    reason           text    NOT NULL,
    detail           text    NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A redelivered message is parked once.
    CONSTRAINT ledger_parked_source_key UNIQUE (source_topic, source_partition, source_offset)
);

DROP TRIGGER IF EXISTS ledger_parked_append_only ON ledger_parked;
CREATE TRIGGER ledger_parked_append_only BEFORE UPDATE OR DELETE ON ledger_parked
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
