-- perdure PostgreSQL schema, version 9: whether a runtime is behind (§11).
--
-- A start is homed on a busy runtime that keeps up, so that load one
-- runtime can carry stays on it and is batched there (spread thinly over K
-- runtimes, every runtime commits and fetches for a trickle, and on shared
-- cores K runtimes were slower than one). A runtime whose fetches find
-- work older than a threshold sets behind = true; starts then go to the
-- next runtime, and come back when it has caught up (see _pg_members).
-- Old runtimes never set the flag: they count as keeping up.
ALTER TABLE runtimes ADD COLUMN IF NOT EXISTS behind boolean NOT NULL DEFAULT false;
