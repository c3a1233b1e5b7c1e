-- Issue 15: one index for event ids instead of two, so each appended row updates four indexes, not five.
--
-- Before: ledger_log_event_id (event_id), every row, for the ledger's duplicate check (R18: every row
-- of an id, rejected ones too, so the same bytes again are a redelivery), and the unique partial
-- ledger_log_applied_meeting_event_id_key (meeting_id, event_id) WHERE decision = 'accepted' (R18 in
-- SQL, 015). Each accepted row went into both: two random inserts into B-trees keyed by ids (a
-- channel's ids are not in log order) per row, of the five index updates a row costs.
--
-- After: one unique index over every row, (event_id, meeting_id, accepted), accepted being true for an
-- accepted row and NULL for a rejected one. R18 holds exactly as before: two accepted rows of an id in
-- one meeting collide on (event_id, meeting_id, true); rejected rows never collide, since a unique index
-- treats NULLs as distinct (the default, NULLS DISTINCT), so a rejected row still holds no id, and the
-- same id in another meeting is another key. It keeps the old unique index's name, so a refused row
-- still names R18's index (tests/integration/test_log.py).
--
-- The readers it serves (checked with EXPLAIN on a migrated database of 100,000 rows; each an Index
-- Scan or Index Only Scan of this index): the duplicate check (services/adapters/postgres/log/append.py
-- known_event_ids, a join on unnest probing event_id), a load's decisions (log/register.py: meeting_id =
-- $1 AND event_id = ANY($2)), a receipt's row (log/proofs.py: event_id = $1), the judge's rebuild of
-- an admin event's decision (log/admin.py) and audit verify's duplicate_event_id check (log/verify.py:
-- meeting_id and event_id equal): event_id leads, so an id alone is one probe, as with the old index.
--
-- Measured: COPY of 50,000 of the benchmark's signed rows (compact form included) in 5,000-row
-- transactions into ledger_log-shaped tables on one scratch database, the backend's own CPU time
-- (/proc, so other work on the machine does not count), three alternating runs, all with 019's
-- toast_tuple_target: 37.0-38.2 us a row with the two indexes, 25.8-33.0 with this one, 24.8-34.0
-- into a bare table without any index (load average 9-18 from other work: compare within a run).
--
-- No row changes: the log stays append-only; the index is built from the rows there are. Built before
-- the old ones are dropped: R18 is never unenforced, even for a moment (one transaction anyway).
--
-- It blocks appends while it builds. Not CONCURRENTLY: `db migrate` applies each migration inside a
-- transaction (services/adapters/postgres/migrate.py), where CREATE INDEX CONCURRENTLY cannot run. The
-- build holds a SHARE lock on ledger_log until the migration commits: reads go on, every append (the
-- ledgers' COPY) waits for the whole build; then each DROP INDEX takes an ACCESS EXCLUSIVE lock for a
-- moment, which first waits for any long reader (a running audit verify or projections rebuild) while
-- every read queues behind it. Measured on a ledger_log-shaped scratch table on the local stack
-- (payloads of ~1,400 bytes and compact forms in line, as since 019; load average ~4 from other work on
-- the 2 cores; the heap in the OS cache, a cold one adds its read): 0.6 s for 300,000 rows (586 MB), 3.4-3.6 s
-- for 1,000,000 (1.95 GB), and an INSERT issued 0.3 s into the build returned only when it was done
-- (0.3 s and 3.1-3.3 s later). So a log of N million rows pauses ingest for about 3.5 s x N (Kafka holds
-- the backlog; nothing is lost): migrate with the ledger stopped, or at a quiet moment, and not during an
-- audit verify or rebuild.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_log_event_ids_020 ON ledger_log
    (event_id, meeting_id, (CASE WHEN decision = 'accepted' THEN true END));
DROP INDEX IF EXISTS ledger_log_applied_meeting_event_id_key;
DROP INDEX IF EXISTS ledger_log_event_id;
ALTER INDEX ledger_log_event_ids_020 RENAME TO ledger_log_applied_meeting_event_id_key;
