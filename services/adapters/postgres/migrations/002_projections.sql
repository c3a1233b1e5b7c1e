-- Projections: quorum and tallies folded from the log. Each projector commits its checkpoint in the
-- same transaction as its results, so results always match exactly the log prefix they claim.

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection text   PRIMARY KEY,
    position   bigint NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per meeting: shares present and how far into the log the tally is.
CREATE TABLE IF NOT EXISTS tally_meetings (
    meeting_id     text    PRIMARY KEY,
    present        bigint  NOT NULL CHECK (present >= 0),
    present_count  integer NOT NULL CHECK (present_count >= 0),
    events_applied bigint  NOT NULL DEFAULT 0,
    as_of_position bigint  NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Shares per (item, option, nominee); option 'broker_non_vote' holds R16's broker non-votes and
-- nominee '' the registered holders, so over-votes (R17) can be judged per nominee.
CREATE TABLE IF NOT EXISTS tally_buckets (
    meeting_id text   NOT NULL,
    item_id    text   NOT NULL,
    option     text   NOT NULL,
    nominee    text   NOT NULL,
    shares     bigint NOT NULL CHECK (shares > 0),
    PRIMARY KEY (meeting_id, item_id, option, nominee)
);

-- The fold's per-control-number state (latest instruction of each kind, latest revocation), so a
-- restarted projector resumes from its checkpoint instead of replaying the whole log.
CREATE TABLE IF NOT EXISTS tally_voters (
    meeting_id     text NOT NULL,
    control_number text NOT NULL,
    state          json NOT NULL,
    PRIMARY KEY (meeting_id, control_number)
);
