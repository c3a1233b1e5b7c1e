-- Issue 15: each log row's compact form, written once by the ledger beside the payload.
--
-- compact: one format byte, then the MessagePack of the decoded (upcast) event without its channel
-- signature (events/compact.py). The projector, replays, `projections rebuild` and refolds read it
-- instead of parsing the payload's JSON again (7 of 11 us per replayed event went to that parse).
-- The payload stays the evidence, exactly as received, under the hash chain; the compact form is
-- derived, not covered by the chain, and `audit verify` checks every row's equals its payload's
-- decoding (finding compact_mismatch). Exports leave it out: auditors recompute it from payloads.
--
-- Nullable: rows logged before this migration have none (ADD COLUMN without a default stores
-- nothing per row: no rewrite, no UPDATE, so the append-only trigger is untouched), nor have rows
-- an older ledger appends; readers decode their payload instead, as they do for a row whose format
-- byte is not the one they know (a future format: the log cannot be UPDATEd to a new one).
ALTER TABLE ledger_log ADD COLUMN IF NOT EXISTS compact bytea;

-- Readers test the format byte in SQL (get_byte(compact, 0)), which fails on an empty value, and a
-- form is at least its format byte and one MessagePack value. NOT VALID: every existing row holds
-- NULL (the column is new), so there is nothing to scan for; rows from now on are checked.
ALTER TABLE ledger_log DROP CONSTRAINT IF EXISTS ledger_log_compact_has_format;
ALTER TABLE ledger_log ADD CONSTRAINT ledger_log_compact_has_format
    CHECK (compact IS NULL OR octet_length(compact) >= 2) NOT VALID;

-- Keep a row's payload in the row. With its compact form a signed vote's row is about 2,075 bytes, past
-- PostgreSQL's 2,032-byte TOAST threshold, and by default its payload was then moved out of line: one more
-- heap tuple and one more index entry (the TOAST table's) per row. Measured on 40,000 rows as the ledger
-- builds them, COPYed in 20,000-row transactions, alternating (3 rounds, load average 13-16): 6,900-8,700
-- rows/s without compact forms, 3,900-4,900 with them stored out of line, 5,900-6,400 with this setting.
-- Rows up to half a page stay whole; larger ones (register chunks) are compressed and moved out as before.
-- A reloption: no rewrite.
ALTER TABLE ledger_log SET (toast_tuple_target = 4080);

-- Grants: no new table. compact falls under the table grants of 007 (the ledger SELECTs and
-- INSERTs it, the projector and readers SELECT it, nobody UPDATEs it). Restated as a check, as in
-- 010 and 014, so that a column-level grant made since cannot pass unnoticed.
DO $$
BEGIN
    IF has_column_privilege('vote_ledger_ledger', 'ledger_log', 'compact', 'UPDATE')
       OR has_column_privilege('vote_ledger_projector', 'ledger_log', 'compact', 'UPDATE')
       OR has_column_privilege('vote_ledger_reader', 'ledger_log', 'compact', 'UPDATE') THEN
        RAISE EXCEPTION 'the log must stay append-only: a service role may UPDATE ledger_log.compact';
    END IF;
    IF NOT has_column_privilege('vote_ledger_ledger', 'ledger_log', 'compact', 'INSERT')
       OR NOT has_column_privilege('vote_ledger_reader', 'ledger_log', 'compact', 'SELECT')
       OR NOT has_column_privilege('vote_ledger_projector', 'ledger_log', 'compact', 'SELECT') THEN
        RAISE EXCEPTION 'the ledger must append compact and readers and the projector must read it';
    END IF;
END
$$;
