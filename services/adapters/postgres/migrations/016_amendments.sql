-- Issue 12: meeting amendments (meeting.adjourned, meeting.cutoff_changed, meeting.corrected) are
-- admin events: a judge is rebuilt from them too (they change the cut-off in force, R12, and the
-- recommendation in force, R9), so the rows a judge is rebuilt from now include them.
--
-- The partial index lists exactly events.JUDGE_TAGS, in its order: services/adapters/postgres/log/
-- admin.py names these types literally in its IN list, which must match this predicate for the
-- planner to use the index (without it, a restarting ledger, the projector and `audit history`
-- scanned the whole log for the admin rows). tests/unit/test_event_tags.py checks the two agree.
-- No row changes: the log stays append-only; the index is rebuilt from the rows there are.
DROP INDEX IF EXISTS ledger_log_admin_rows;
CREATE INDEX IF NOT EXISTS ledger_log_admin_rows ON ledger_log (position)
    WHERE type IN ('meeting.scheduled', 'positions.recorded', 'polls.closed', 'channel.key_registered',
                   'channel.key_revoked', 'meeting.adjourned', 'meeting.cutoff_changed', 'meeting.corrected',
                   'proxy.substituted');
