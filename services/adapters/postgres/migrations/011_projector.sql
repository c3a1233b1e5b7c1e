-- The projector: one meeting's bad data cannot stop the others, the checkpoint never moves
-- backwards, and (services/runtime/projector.py) one projector writes at a time.

-- Meetings the projector could not fold or write (e.g. a sum out of bigint range, issue 9): it
-- records the meeting here, in the transaction that moves the checkpoint past the meeting's rows,
-- and skips the meeting's later rows while every other meeting goes on. `position` is the first
-- log row of the meeting not projected: its tally rows stay as of the rows before it. A rebuild
-- of the meeting (`projections rebuild`, services/runtime/rebuild.py) deletes the row in its swap
-- transaction, after which the projector follows the meeting again.
CREATE TABLE IF NOT EXISTS projection_failures (
    projection text   NOT NULL,
    meeting_id text   NOT NULL,
    position   bigint NOT NULL CHECK (position > 0),
    error      text   NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (projection, meeting_id)
);

-- The projector writes the failures, with the tally rows; readers (status, auditors) see them.
REVOKE ALL ON projection_failures FROM PUBLIC, vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_failures TO vote_ledger_projector;
GRANT SELECT ON projection_failures TO vote_ledger_reader;

-- A checkpoint names the log prefix its projection's tables are a fold of. Moving it backwards
-- would make the next batch fold rows a second time into tables that already hold them (or a
-- stale writer, e.g. a second projector that lost its lock, overwrite newer rows with older
-- ones), so refuse it here, whatever the code above does: an UPDATE to a smaller position and a
-- DELETE (after which an INSERT could start again lower) fail, and with them the writer's whole
-- transaction, tally rows included. Rebuilds never move the checkpoint (they replay a meeting up
-- to it and swap its rows in, bumping `generation`); resetting a projection to an earlier
-- position is an owner's act (ALTER TABLE ... DISABLE TRIGGER, which no service role may run).
CREATE OR REPLACE FUNCTION projection_checkpoint_monotonic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'projection % checkpoint cannot be deleted (at position %)', OLD.projection, OLD.position
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'a checkpoint only moves forward; see 011_projector.sql';
    END IF;
    IF NEW.position < OLD.position OR NEW.projection <> OLD.projection THEN
        RAISE EXCEPTION 'projection % checkpoint cannot move backwards from % to %',
            OLD.projection, OLD.position, NEW.position
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'another projector wrote a later position: this one is stale; see 011_projector.sql';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION projection_checkpoint_monotonic() FROM PUBLIC;

DROP TRIGGER IF EXISTS projection_checkpoints_monotonic ON projection_checkpoints;
CREATE TRIGGER projection_checkpoints_monotonic BEFORE UPDATE OR DELETE ON projection_checkpoints
    FOR EACH ROW EXECUTE FUNCTION projection_checkpoint_monotonic();
-- TRUNCATE bypasses row triggers: only the owner holds it (007_least_privilege.sql).
