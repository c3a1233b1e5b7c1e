-- R18 per meeting: an event_id applies once *within its meeting*. 012 made it once in the whole
-- log, but what decides who may use an id is per meeting: channel keys are registered per meeting
-- and S6 only asks a signed id to start with the key's channel id. So a party holding a key for
-- channel id X in meeting B (or the public demo keys of a meeting loaded with
-- --simulated-channels) could sign "X:0042" in B and turn the real X's "X:0042" in meeting A into
-- a duplicate_event_id: a genuine vote lost. And in a meeting without signatures_required an
-- unsigned vote could take the predictable id of another meeting's future meeting.scheduled
-- (meeting load derives it from the spec), so that meeting could never be scheduled. Within one
-- meeting the parties are the meeting's own channels and administration, which is what R18 is for.
--
-- The invariant in SQL is therefore: at most one *accepted* row per (meeting_id, event_id); a
-- rejected row still holds no id (see 012).
DROP INDEX IF EXISTS ledger_log_applied_event_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_log_applied_meeting_event_id_key ON ledger_log (meeting_id, event_id)
    WHERE decision = 'accepted';
-- Kept from 012: the ledger's duplicate check (services/adapters/postgres/log/append.py
-- known_event_ids) probes ledger_log_event_id (event_id) once per id of a batch and reads each
-- row's meeting_id, decision and payload; it needs every row of an id, rejected ones too (the same
-- bytes again are a redelivery), which the partial index above does not hold. An id is rarely
-- logged in more than one meeting (channels prefix their ids), so the probe reads no more rows
-- than before.
CREATE INDEX IF NOT EXISTS ledger_log_event_id ON ledger_log (event_id);
-- A duplicate_event_id rejection always follows an accepted row of its id in its own meeting
-- (checked by `audit verify`: a CHECK cannot look at other rows).
