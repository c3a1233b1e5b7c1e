-- Instructions the rules engine refused under the `reject` over-vote policy (R17), per item, so
-- reports need not scan every voter's state. Written with the tally rows and checkpoint.
CREATE TABLE IF NOT EXISTS tally_overvote_rejections (
    meeting_id     text NOT NULL,
    event_id       text NOT NULL,
    item_id        text NOT NULL,
    nominee        text NOT NULL,
    control_number text NOT NULL,
    PRIMARY KEY (meeting_id, event_id)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON tally_overvote_rejections TO vote_ledger_projector;
GRANT SELECT ON tally_overvote_rejections TO vote_ledger_reader;
