-- The projector rewrites each touched voter's state once per batch: at a million submissions over
-- a 100,000-position register that is ten updates per row. With pages full (fillfactor 100) every
-- update moves the row to another page and adds an index entry; leaving room lets PostgreSQL
-- update in place (HOT: no index change, the old version pruned on the page). The state column is
-- not indexed, so every update qualifies. Existing pages keep their layout until rewritten.
ALTER TABLE tally_voters SET (fillfactor = 70);
ALTER TABLE tally_shadow.tally_voters SET (fillfactor = 70);
