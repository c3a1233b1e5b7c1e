-- Views for dashboards that read PostgreSQL directly (Grafana's PostgreSQL data source,
-- deploy/grafana/vote-ledger.json): COUNTED numbers only, each a plain aggregate of rows.
--
-- NOT TALLIES. The tally tables hold the fold's state, not results: over-vote proration (R17, per
-- nominee, largest remainder) and each item's outcome (its vote standard and quorum) are computed in
-- Python at read time (projections/overvotes.py, projections/outcomes.py) and cannot be applied in
-- SQL here without a second implementation that could drift from the one the CLI and the API use.
-- A dashboard that needs For/Against/Abstain, margins or outcomes must take them from the API
-- (GET /v1/meetings/{meeting_id}/tally, exactly `vote-ledger tally --json`), never from these views.
-- dashboard_item_buckets below is the raw, UNPRORATED per-nominee bucket: fit for "how many shares
-- have instructed", wrong as a result whenever a nominee over-votes.
--
-- Security: a dashboard's login (Grafana's) is a member of vote_ledger_dashboards, a group role holding
-- SELECT on these four views and nothing else: not ledger_log (each holder's vote, in its payload), not
-- api_tokens (the hashes), not the tally tables. That works because these views are created without
-- security_invoker (PostgreSQL 15+'s option; off by default, and not set here): a view reads its tables
-- with its OWNER's privileges (the login that runs `db migrate`), so SELECT on the view is all a
-- dashboard needs, and every column it can see is one the views' SELECT lists name. Keep it that way:
-- `WITH (security_invoker = true)` would make the dashboards role need the tables themselves. The
-- reader role (the API, auditors) keeps SELECT on the views too (it reads the tables anyway).

-- Log rows per minute (by recorded_at, the database's clock the log is ordered by), meeting,
-- decision and reason ('' when accepted): the submission rate and rejections by reason over time.
-- An aggregate over ledger_log: Grafana's $__timeFilter(minute) bounds it, but PostgreSQL still reads
-- the rows of the meetings in range (no index on recorded_at: appends must stay cheap).
CREATE OR REPLACE VIEW dashboard_submissions_per_minute AS
SELECT date_trunc('minute', recorded_at) AS minute,
       meeting_id,
       decision,
       coalesce(reason, '') AS reason,
       count(*) AS rows
FROM ledger_log
GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW dashboard_submissions_per_minute IS
    'Log rows per minute by meeting, decision and reason (counted; not a tally: see 018_dashboard_views.sql)';

-- Parked messages (not decodable, or refused by the database) by reason and source topic, with the
-- last one's time: what `status` shows, for a dashboard's table.
CREATE OR REPLACE VIEW dashboard_parked_by_reason AS
SELECT reason,
       source_topic,
       count(*) AS messages,
       max(parked_at) AS last_parked_at
FROM ledger_parked
GROUP BY 1, 2;

COMMENT ON VIEW dashboard_parked_by_reason IS 'Parked messages by reason and source topic (counted)';

-- The projection's raw buckets per item, option and nominee ('' = registered holders), with the log
-- position they are projected to. RAW: before R17's proration of an over-voting nominee, and without
-- outcomes; the tally is the API's (see the top of this file).
CREATE OR REPLACE VIEW dashboard_item_buckets AS
SELECT b.meeting_id,
       b.item_id,
       b.option,
       b.nominee,
       b.shares AS raw_shares,
       m.as_of_position
FROM tally_buckets AS b
JOIN tally_meetings AS m USING (meeting_id);

COMMENT ON VIEW dashboard_item_buckets IS
    'RAW per-nominee buckets, before R17 proration and without outcomes: take tallies from the API';

-- Quorum's counted part: shares and holders present per meeting as projected, with the projection's
-- position. R17 caps a nominee's votes, not the shares it reports present (R14, docs/rules.md), so
-- these are the numbers the tally gives; whether quorum is met (R14, against the meeting's outstanding
-- shares and fraction) is again the API's.
CREATE OR REPLACE VIEW dashboard_presence AS
SELECT meeting_id, present AS shares_present, present_count AS holders_present, as_of_position, updated_at
FROM tally_meetings;

COMMENT ON VIEW dashboard_presence IS 'Shares and holders present per meeting, as projected (counted)';

-- The dashboards' group role, NOLOGIN like 003's (operators: `GRANT vote_ledger_dashboards TO grafana;`).
-- Created here when missing, as 003 creates the others; `stack up` and the test fixtures create it first
-- with their superuser (services/adapters/postgres/logins.py ensure_group_roles), since the owner that
-- runs `db migrate` may not CREATE ROLE.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vote_ledger_dashboards') THEN
        CREATE ROLE vote_ledger_dashboards NOLOGIN;
    END IF;
END
$$;

-- As 007 checks of the service roles: an attribute or a membership would add privileges to the ones below.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = 'vote_ledger_dashboards'
                AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                     OR EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid))) THEN
        RAISE EXCEPTION 'vote_ledger_dashboards must hold only its grants on the dashboard views'
            USING HINT = 'ALTER ROLE vote_ledger_dashboards NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION';
    END IF;
END
$$;

-- Whatever it was given by hand before: SELECT on the views, nothing on any table.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM vote_ledger_dashboards;
REVOKE ALL ON ALL TABLES IN SCHEMA tally_shadow FROM vote_ledger_dashboards;
GRANT SELECT ON dashboard_submissions_per_minute, dashboard_parked_by_reason, dashboard_item_buckets,
    dashboard_presence TO vote_ledger_reader, vote_ledger_dashboards;
