-- A rebuild bumps its projection's generation in the same transaction as the rebuilt rows; a live
-- projector that sees a generation other than the one it loaded reloads instead of overwriting the
-- rebuilt tables with its older in-memory state.
ALTER TABLE projection_checkpoints ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;

-- Parked messages are evidence too: refuse TRUNCATE as for the log.
DROP TRIGGER IF EXISTS ledger_parked_no_truncate ON ledger_parked;
CREATE TRIGGER ledger_parked_no_truncate BEFORE TRUNCATE ON ledger_parked
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
