-- Tamper evidence: each row carries the position of its meeting's previous row and a SHA-256 over
-- its canonical bytes chained to that row's hash (projections/chain.py). Changing a row breaks its
-- hash; deleting one leaves the next row pointing at a missing position; re-hashing everything
-- after an edit changes the meeting's final hash, which exports and reports publish.
ALTER TABLE ledger_log ADD COLUMN IF NOT EXISTS prev_position bigint;
ALTER TABLE ledger_log ADD COLUMN IF NOT EXISTS hash bytea;

-- NOT VALID: enforced for every new row; rows logged before this migration keep no hash.
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_hash_is_sha256;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_hash_is_sha256
    CHECK (hash IS NOT NULL AND octet_length(hash) = 32) NOT VALID;
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_prev_before;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_prev_before
    CHECK (prev_position IS NULL OR prev_position < position) NOT VALID;
