-- The ledger's appends (and parked messages) serialise on this one row, locked FOR UPDATE until the
-- transaction ends, instead of on an advisory lock. Any login allowed advisory locks (the projector
-- needs them for its own lease) could take that one and hold it: ingestion stopped for as long as
-- it pleased (found by the adversarial test). A row lock needs UPDATE on this table, which only the
-- ledger holds; SELECT (readers') cannot lock the row.
CREATE TABLE IF NOT EXISTS ledger_append_lock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one)  -- exactly one row
);
INSERT INTO ledger_append_lock VALUES (true) ON CONFLICT DO NOTHING;

REVOKE ALL ON ledger_append_lock FROM PUBLIC, vote_ledger_projector, vote_ledger_reader;
GRANT SELECT, UPDATE ON ledger_append_lock TO vote_ledger_ledger;
-- Auditors may see it exists; seeing it locks nothing.
GRANT SELECT ON ledger_append_lock TO vote_ledger_reader;
