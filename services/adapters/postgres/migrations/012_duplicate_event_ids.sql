-- R18: one event_id applies once. The ledger keeps the first message of an id and drops its
-- redeliveries (the same bytes). A *different* message under an id already applied (a channel's
-- bug, or a party squatting another's id) used to be dropped silently; now it is logged rejected
-- with reason `duplicate_event_id`, so squatting shows in the log, the rejection report and audits.
--
-- The invariant in SQL is therefore exactly R18's: at most one *accepted* row per event_id. A
-- rejected row applies nothing, so it does not hold its id: otherwise a message published on the
-- votes topic under an id the meeting administration will use (ids can be predictable) would be
-- logged rejected first and turn the real meeting.scheduled into a duplicate.
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_event_id_key;
DROP INDEX IF EXISTS ledger_log_event_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_log_applied_event_id_key ON ledger_log (event_id)
    WHERE decision = 'accepted';
-- Every row of an id, found by event_id: the ledger compares a new message with each payload
-- logged under its id (the same bytes again are a redelivery, dropped).
CREATE INDEX IF NOT EXISTS ledger_log_event_id ON ledger_log (event_id);
-- A duplicate_event_id rejection always follows an accepted row of its id (checked by `audit
-- verify`: a CHECK cannot look at other rows).
