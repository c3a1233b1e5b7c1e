-- R18 keeps the first message of an event_id and drops its redeliveries (the same bytes). A
-- *different* message under an id already used (a channel's bug, or a party squatting another's
-- id) used to be dropped silently too; now the ledger logs it rejected with reason
-- `duplicate_event_id`, so squatting is visible in the log, the rejection report and audits.
--
-- The log's uniqueness of event_id therefore becomes: at most one row per event_id that is not a
-- duplicate_event_id rejection. That is still the R18 invariant (one event_id applies once: only
-- that row can be accepted), enforced here whatever the ledger's code does.
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_event_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_log_event_id_key ON ledger_log (event_id)
    WHERE reason IS DISTINCT FROM 'duplicate_event_id';
-- The rejected duplicates of an id, found by event_id (the ledger compares a new message with
-- every payload logged under its id, so the same squatting message twice is logged once).
CREATE INDEX IF NOT EXISTS ledger_log_duplicate_event_ids ON ledger_log (event_id)
    WHERE reason = 'duplicate_event_id';
-- A duplicate_event_id rejection is never the first row of its id: the first is the one kept.
-- (Checked by `audit verify`; a CHECK cannot look at other rows.)
